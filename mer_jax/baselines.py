"""The trivial baselines every model is scored against, fitted on an iteration's training songs.

* **constant**: every test song gets the mean of the training songs' four labels (valence mean,
  arousal mean, valence std, arousal std).
* **calibrated constant**: the same means, with each dimension's std widened to
  ``sqrt(mean sigma^2 + variance of the means)`` over the training songs (population variance):
  the spread of a random song's ratings around the training mean (the law of total variance).
  The best a model that knows nothing about the audio can do, in KL, to first order.

On the paper authors' PMEmo predictions (``python -m pipelines.reproduce_paper``) the constant
scores a mean KL of about 1.3-1.7 per iteration and the calibrated constant about 0.88-1.04:
below the paper's Random Forest (1.96-2.48) and level with its CRNN (0.70-1.20).
"""
from __future__ import annotations

import numpy as np

from mer_jax import kl as kl_lib

NAMES = ("constant", "calibrated")


def constant(train_labels: np.ndarray) -> np.ndarray:
    """``(n, 4)`` training labels -> ``(4,)``: their column means."""
    labels = _check(train_labels)
    return labels.mean(axis=0)


def calibrated(train_labels: np.ndarray) -> np.ndarray:
    """``(n, 4)`` -> ``(4,)``: mean of the means; std = sqrt(mean sigma^2 + var of the means)."""
    labels = _check(train_labels)
    means = labels[:, :2].mean(axis=0)
    stds = np.sqrt(np.mean(np.square(labels[:, 2:]), axis=0) + labels[:, :2].var(axis=0))
    return np.concatenate([means, stds])


def _check(train_labels) -> np.ndarray:
    labels = np.asarray(train_labels, np.float64)
    if labels.ndim != 2 or labels.shape[1] != 4 or len(labels) == 0:
        raise ValueError(f"training labels must be (songs > 0, 4), not {labels.shape}")
    if not np.all(np.isfinite(labels)):
        raise ValueError("training labels hold non-finite values")
    return labels


def predictions(train_labels: np.ndarray, songs: int) -> dict[str, np.ndarray]:
    """Each baseline's prediction table ``(songs, 4)`` (the same row for every song)."""
    return {"constant": np.tile(constant(train_labels), (songs, 1)),
            "calibrated": np.tile(calibrated(train_labels), (songs, 1))}


def baseline_kl(truth: np.ndarray, train_labels: np.ndarray,
                min_std: float | None = None) -> dict[str, np.ndarray]:
    """Per-song KL of each baseline against ``truth (songs, 4)``, computed exactly like a model's
    (the same checked, jitted KL and std floor)."""
    out = {}
    for name, prediction in predictions(train_labels, len(truth)).items():
        out[name] = kl_lib.kl_divergence(truth[:, :2], truth[:, 2:], prediction[:, :2],
                                         prediction[:, 2:], min_std=min_std).astype(np.float64)
    return out


def training_labels_from_tables(tables) -> dict[int, np.ndarray]:
    """Training labels per iteration when only the prediction tables are known (the authors'
    files): the labelled songs of all the tables that are not in that iteration's test set.
    ``tables``: IterationTables; returns iteration -> ``(n_train, 4)``."""
    labels: dict[str, np.ndarray] = {}
    for table in tables:
        for song, row in zip(table.song_ids, table.truth):
            labels.setdefault(song, row)
    out = {}
    for table in tables:
        test = set(table.song_ids)
        train = [row for song, row in labels.items() if song not in test]
        if not train:
            raise ValueError(f"iteration {table.iteration}: no labelled song outside its test "
                             "set, so its training labels are unknown")
        out[table.iteration] = np.stack(train)
    return out


def training_labels_from_splits(splits: list[dict], ids: list[str],
                                labels: np.ndarray) -> dict[int, np.ndarray]:
    """Training labels per iteration from ``splits.json``'s splits and the store's labels
    (``ids`` (n,) and ``labels`` (n, 4) in the store's order)."""
    index = {song: k for k, song in enumerate(ids)}
    return {split["iteration"]: np.asarray(labels, np.float64)[[index[s] for s in split["train"]]]
            for split in splits}
