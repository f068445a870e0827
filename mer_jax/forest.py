"""The paper's Random Forest on openSMILE features (§4), over the same Monte-Carlo splits.

scikit-learn ``RandomForestRegressor``: 100 trees, squared error, all features per split
(max_features=None), min_samples_split=2, min_samples_leaf=1, no depth limit, all cores; one
forest predicts the 4 targets (valence mean, arousal mean, valence std, arousal std). "mixed"
reads ``mixed/opensmile`` (6,373 features), "sep" ``sep/opensmile`` (the 4 stems' 25,492).
Each forest's ``random_state`` comes from its (seed, iteration), the seeds being the CRNN's.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from tqdm import tqdm

from mer_jax import files
from mer_jax.predictions import table_name, write_prediction_table
from mer_jax.store import FeatureStore


@dataclasses.dataclass(frozen=True)
class ForestConfig:
    n_estimators: int = 100
    criterion: str = "squared_error"
    max_features: float | str | None = None
    min_samples_split: int = 2
    min_samples_leaf: int = 1
    max_depth: int | None = None
    n_jobs: int = -1


class NonFiniteFeatures(ValueError):
    """Features that are NaN or infinite; the message names the songs."""


def random_state(seed: int, iteration: int) -> int:
    """The forest of (seed, iteration) draws from its own stream: SeedSequence([seed, it])."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def make_forest(config: ForestConfig, iteration: int, seed: int = 0) -> RandomForestRegressor:
    return RandomForestRegressor(
        n_estimators=config.n_estimators, criterion=config.criterion,
        max_features=config.max_features, min_samples_split=config.min_samples_split,
        min_samples_leaf=config.min_samples_leaf, max_depth=config.max_depth,
        n_jobs=config.n_jobs, random_state=random_state(seed, iteration))


def check_features(features: np.ndarray, ids: list[str], rows: np.ndarray, what: str) -> None:
    """Raise NonFiniteFeatures naming the songs (of ``rows``) whose features are not finite."""
    bad = rows[~np.all(np.isfinite(features[rows]), axis=1)]
    if bad.size:
        names = [ids[i] for i in bad]
        raise NonFiniteFeatures(f"{what}: non-finite features for {len(names)} songs "
                                f"({', '.join(names[:10])}); they are never replaced by 0 - "
                                "re-preprocess those songs or drop them")


def fit_predict(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                config: ForestConfig, iteration: int, seed: int = 0) -> np.ndarray:
    """Fit on ``features[train]`` -> predict ``(len(test), 4)``; all features must be finite."""
    forest = make_forest(config, iteration, seed).fit(features[train], labels[train])
    return forest.predict(features[test])


def train_forests(store_path: os.PathLike | str, splits: list[dict], mode: str, out_dir: Path,
                  config: ForestConfig = ForestConfig(), progress: bool = True,
                  seeds: list[int] = (0,)) -> list[Path]:
    """One forest per seed and split; writes ``out_dir/<mode>[_seed_<S>]_iteration_N.csv`` (names
    as the CRNN's). An interrupted run resumes per table; a changed fingerprint (forest config,
    the features as made (``FeatureStore.inputs_key``), splits, seeds) removes the mode's old
    tables first (``out_dir/forest_<mode>.json``)."""
    store = FeatureStore(store_path)
    out_dir = Path(out_dir)
    _claim(out_dir, mode, files.fingerprint(dataclasses.asdict(config), store.inputs_key(
        f"{mode}/opensmile", splits), mode, splits, list(seeds)))
    index_of = {song: i for i, song in enumerate(store.ids)}
    songs = np.array(sorted({index_of[s] for split in splits
                             for s in split["train"] + split["test"]}))
    features, paths = None, []
    jobs = [(seed, split) for seed in seeds for split in splits]
    for seed, split in tqdm(jobs, desc=f"random forest ({mode})", unit="forest",
                            disable=not progress):
        path = out_dir / (table_name(mode, split["iteration"], seed if len(seeds) > 1 else None)
                          + ".csv")
        paths.append(path)
        if path.is_file():
            continue
        train = np.array([index_of[s] for s in split["train"]])
        test = np.array([index_of[s] for s in split["test"]])
        if features is None:   # read and checked once, for every song of every split
            features = store.array(f"{mode}/opensmile")[:]
            check_features(features, store.ids, songs, f"{store_path} {mode}/opensmile")
        prediction = fit_predict(features, store.labels, train, test, config, split["iteration"],
                                 seed)
        write_prediction_table(path, split["test"], store.labels[test].astype(np.float64),
                               {mode: prediction.astype(np.float64)})
    return paths


def _claim(out_dir: Path, mode: str, fingerprint: str) -> None:
    manifest = out_dir / f"forest_{mode}.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("fingerprint") == fingerprint:
        return
    for path in out_dir.glob(f"{mode}_*iteration_*.csv"):
        path.unlink()
    files.write_json(manifest, {"mode": mode, "fingerprint": fingerprint})
