"""The paper's Random Forest on openSMILE features (§4), over the same Monte-Carlo splits.

scikit-learn ``RandomForestRegressor``: 100 trees, squared error, all features per split
(max_features=None), min_samples_split=2, min_samples_leaf=1, no depth limit, all cores; one
forest predicts the 4 targets (valence mean, arousal mean, valence std, arousal std). "mixed"
reads ``mixed/opensmile`` (6,373 features), "sep" ``sep/opensmile`` (the 4 stems' 25,492).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from tqdm import tqdm

from mer_jax.predictions import write_prediction_table
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
    seed: int = 0


def make_forest(config: ForestConfig, iteration: int) -> RandomForestRegressor:
    return RandomForestRegressor(
        n_estimators=config.n_estimators, criterion=config.criterion,
        max_features=config.max_features, min_samples_split=config.min_samples_split,
        min_samples_leaf=config.min_samples_leaf, max_depth=config.max_depth,
        n_jobs=config.n_jobs, random_state=config.seed + iteration)


def fit_predict(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                config: ForestConfig, iteration: int) -> np.ndarray:
    """Fit on ``features[train]`` -> predict ``(len(test), 4)``. Non-finite features (openSMILE
    can emit them for silent stems) are replaced by 0 before fitting."""
    x = np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)
    forest = make_forest(config, iteration).fit(x[train], labels[train])
    return forest.predict(x[test])


def train_forests(store_path: os.PathLike | str, splits: list[dict], mode: str, out_dir: Path,
                  config: ForestConfig = ForestConfig(), progress: bool = True) -> list[Path]:
    """One forest per split; writes ``out_dir/<mode>_iteration_N.csv`` (kept on rerun)."""
    store = FeatureStore(store_path)
    index_of = {song: i for i, song in enumerate(store.ids)}
    features = None
    paths = []
    for split in tqdm(splits, desc=f"random forest ({mode})", unit="iteration",
                      disable=not progress):
        path = Path(out_dir) / f"{mode}_iteration_{split['iteration']}.csv"
        paths.append(path)
        if path.is_file():
            continue
        if features is None:
            features = store.array(f"{mode}/opensmile")[:]
        train = np.array([index_of[s] for s in split["train"]])
        test = np.array([index_of[s] for s in split["test"]])
        prediction = fit_predict(features, store.labels, train, test, config, split["iteration"])
        write_prediction_table(path, split["test"], store.labels[test].astype(np.float64),
                               {mode: prediction.astype(np.float64)})
    return paths
