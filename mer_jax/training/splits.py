"""The songs each model trains and is tested on: Monte-Carlo splits, or earlier tables' test songs.

A split is ``{"iteration": N, "train": [song ids], "test": [song ids]}``. The splits of a run are
saved as ``splits.json`` in its workdir (:func:`store_splits`) and reused by every stage, so the
CRNN, the Random Forest and the baselines see the same songs. Monte-Carlo split k draws from
``SeedSequence([split_seed, k])`` (no spawn key, so never one of ``mer_jax.training.data``'s
streams).
"""
from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer_jax import files, quadrants
from mer_jax.data.songs import normalize_song_id
from mer_jax.predictions import read_iterations, same_truth
from mer_jax.store import FeatureStore

if TYPE_CHECKING:
    from mer_jax.training.config import TrainConfig


def monte_carlo_splits(ids: list[str], iterations: int, test_fraction: float,
                       seed: int, strata: list | None = None) -> list[dict]:
    """``iterations`` seeded shuffle splits: [{"iteration": 1, "train": [...], "test": [...]}]
    (test size = ceil(test_fraction * n), as scikit-learn's train_test_split). ``strata`` (one
    class per id, e.g. a quadrant) makes them stratified, as scikit-learn's
    StratifiedShuffleSplit: each class gives the test set its share of the n_test songs
    (largest remainders, ties to the larger class), so that training and test sets keep the
    classes' proportions."""
    n_test = math.ceil(test_fraction * len(ids))
    if not 0 < n_test < len(ids):
        raise ValueError(f"a {test_fraction:.0%} test split of {len(ids)} songs is empty or all")
    if strata is not None and len(strata) != len(ids):
        raise ValueError(f"{len(strata)} strata for {len(ids)} songs")
    classes = ([np.arange(len(ids))] if strata is None else
               [np.flatnonzero(np.asarray(strata) == c) for c in sorted(set(strata))])
    shares = _test_shares([len(members) for members in classes], n_test)
    splits = []
    for k in range(iterations):
        rng = np.random.default_rng([seed, k])
        test = np.concatenate([members[rng.permutation(len(members))[:share]]
                               for members, share in zip(classes, shares)])
        chosen = set(test.tolist())
        splits.append({"iteration": k + 1,
                       "train": [ids[i] for i in range(len(ids)) if i not in chosen],
                       "test": [ids[i] for i in sorted(chosen)]})
    return splits


def _test_shares(sizes: list[int], n_test: int) -> list[int]:
    """Test songs per class: ``n_test * size / total`` rounded by largest remainders."""
    exact = np.asarray(sizes, np.float64) * n_test / sum(sizes)
    shares = np.floor(exact).astype(int)
    order = sorted(range(len(sizes)), key=lambda c: (shares[c] - exact[c], -sizes[c]))
    for c in order[:n_test - int(shares.sum())]:
        shares[c] += 1
    return shares.tolist()


def split_strata(store: FeatureStore, ids: list[str]) -> list[int] | None:
    """Each song's quadrant when the store's dataset is categorical (quadrant-labelled: its
    splits are stratified by quadrant), else None."""
    if not store.attrs.get("dataset", {}).get("categorical"):
        return None
    row = {song: i for i, song in enumerate(store.ids)}
    labels = store.labels[[row[song] for song in ids]]
    return quadrants.quadrant_of(labels[:, 0], labels[:, 1]).tolist()


def store_splits(path: os.PathLike | str, store: FeatureStore, iterations: int,
                 config: "TrainConfig") -> list[dict]:
    """The splits of the store's preprocessed songs, saved at ``path`` or reused from it: the one
    way every trainer makes them. Monte-Carlo (``config.test_fraction``, ``config.split_seed``;
    stratified by quadrant for a categorical dataset), or with ``config.test_songs_from`` those
    of earlier prediction tables (:func:`splits_from_tables`)."""
    ids = [store.ids[i] for i in store.done]
    if config.test_songs_from is None:
        return load_or_create_splits(path, ids, iterations, config.test_fraction,
                                     config.split_seed, split_strata(store, ids))
    splits = splits_from_tables(config.test_songs_from, ids, store.labels[store.done],
                                iterations)
    path = Path(path)
    if path.is_file():
        saved = json.loads(path.read_text())      # the same splits, however the glob is spelt
        if "test_songs_from" not in saved or saved["splits"][:iterations] != splits:
            raise ValueError(f"{path} holds other splits than the test songs of "
                             f"{config.test_songs_from} (other tables, songs or count); use "
                             "another workdir")
        return splits
    files.write_json(path, {"test_songs_from": config.test_songs_from, "splits": splits})
    return splits


def load_or_create_splits(path: os.PathLike | str, ids: list[str], iterations: int,
                          test_fraction: float, seed: int, strata: list | None = None
                          ) -> list[dict]:
    """Reuse ``path`` (so the CRNN and the Random Forest see the same songs) or create it."""
    path = Path(path)
    stratified = strata is not None
    if path.is_file():
        saved = json.loads(path.read_text())
        splits = saved["splits"]
        known = set(ids)
        if "test_songs_from" in saved:
            raise ValueError(f"{path} holds the test songs of {saved['test_songs_from']}: set "
                             "test_songs_from to it, or use another workdir")
        if (len(splits) < iterations or saved["seed"] != seed
                or saved["test_fraction"] != test_fraction
                or saved.get("stratified", False) != stratified
                or any(not set(s["train"] + s["test"]) <= known for s in splits)):
            raise ValueError(f"{path} holds other splits (seed, fraction, stratification, songs "
                             "or count differ); use another workdir")
        return splits[:iterations]
    splits = monte_carlo_splits(ids, iterations, test_fraction, seed, strata)
    files.write_json(path, {"seed": seed, "test_fraction": test_fraction,
                            "stratified": stratified, "splits": splits})
    return splits


def splits_from_tables(pattern: str, ids: list[str], labels: np.ndarray,
                       iterations: int) -> list[dict]:
    """Splits 1..``iterations`` that test the songs earlier prediction tables tested: split N's
    test set is the songs of ``ids`` that the tables matching ``pattern`` (a glob) list for
    iteration N, its training set all the other songs. E.g. the paper authors'
    ``crnn_iteration_*.csv`` (154 test songs each): models trained on a full PMEmo store are then
    tested on the songs the authors' CRNN was, and trained on the 613 others, as theirs were.

    ``labels``: ``(len(ids), 4)`` the songs' labels; each table's ground truth must match them
    (else the tables come from another dataset). Song ids compare as ``normalize_song_id`` makes
    them ("113.0" is "113"). Errors name the pattern and the iteration."""
    paths = sorted(glob.glob(os.path.expanduser(pattern)))
    if not paths:
        raise ValueError(f"test_songs_from={pattern!r}: no file matches")
    tested: dict[int, dict[str, np.ndarray]] = {}
    for table in read_iterations(paths):
        songs = dict(zip(table.song_ids, table.truth))
        if tested.setdefault(table.iteration, songs).keys() != songs.keys():
            raise ValueError(f"test_songs_from={pattern!r}: the tables of iteration "
                             f"{table.iteration} test different songs")
    missing = [n for n in range(1, iterations + 1) if n not in tested]
    if missing:
        raise ValueError(f"test_songs_from={pattern!r}: no table of iteration(s) {missing} "
                         f"(the tables hold {sorted(tested)})")
    key = [normalize_song_id(song) for song in ids]
    splits = []
    for n in range(1, iterations + 1):
        chosen = [k for k, song in enumerate(key) if song in tested[n]]
        if not 0 < len(chosen) < len(ids):
            raise ValueError(f"test_songs_from={pattern!r}, iteration {n}: {len(chosen)} of the "
                             f"store's {len(ids)} songs are among its {len(tested[n])} test "
                             "songs; a split needs test and training songs")
        off = [ids[k] for k in chosen if not same_truth(tested[n][key[k]], labels[k])]
        if off:
            raise ValueError(f"test_songs_from={pattern!r}, iteration {n}: the tables' ground "
                             f"truth differs from the store's labels for songs {off[:10]} "
                             "(tables of another dataset?)")
        test = set(chosen)
        splits.append({"iteration": n, "train": [ids[k] for k in range(len(ids)) if k not in test],
                       "test": [ids[k] for k in chosen]})
    return splits
