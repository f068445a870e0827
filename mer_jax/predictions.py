"""Prediction tables in the paper authors' format: one CSV per Monte-Carlo iteration.

Columns: ``song_id``, the ground truth ``gt_{valence,arousal}_{mean,std}``, and for each input
representation ("mixed", "sep") present, ``<input>_{valence,arousal}_{mean,std}``. A training run
writes one table per input (``mixed_iteration_3.csv``, ``sep_iteration_3.csv``); tables of the
same iteration are merged on ``song_id``, so the evaluation reads the authors' combined files and
ours alike. File names end in ``iteration_<N>`` (``crnn_iteration_3.csv``) or, for runs of several
model seeds, ``seed_<S>_iteration_<N>`` (``mixed_seed_2_iteration_3.csv``): :func:`table_name`.
Every value must be a finite number: a cell that is not is an error naming file, song and column.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mer_jax import files
from mer_jax.data.songs import LABEL_NAMES, normalize_song_id

INPUTS = ("mixed", "sep")
GT = "gt"


def columns(prefix: str) -> list[str]:
    """``columns("sep")`` -> sep_valence_mean, sep_arousal_mean, sep_valence_std,
    sep_arousal_std."""
    return [f"{prefix}_{name}" for name in LABEL_NAMES]


_NAME = re.compile(r"(?:^|_)(?:seed_(?P<seed>\d+)_)?iteration_(?P<iteration>\d+)$")


def table_name(prefix: str, iteration: int, seed: int | None = None) -> str:
    """``mixed_iteration_3`` (one seed) or ``mixed_seed_2_iteration_3`` (file stem)."""
    return f"{prefix}_iteration_{iteration}" if seed is None else \
        f"{prefix}_seed_{seed}_iteration_{iteration}"


class PredictionTableError(ValueError):
    """A prediction table that cannot be evaluated; the message names the file."""


@dataclasses.dataclass(frozen=True)
class IterationTable:
    """All predictions of one Monte-Carlo iteration.

    song_ids: (songs,) strings; truth: (songs, 4) float64; predictions: input name -> (songs, 4),
    columns ordered as LABEL_NAMES (valence mean, arousal mean, valence std, arousal std).
    """

    iteration: int
    seed: int | None                  # None: a run of one seed (names without ``seed_<S>``)
    song_ids: tuple[str, ...]
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    sources: tuple[str, ...]


def table_key(path: os.PathLike | str) -> tuple[int | None, int]:
    """``(seed or None, iteration)`` from a table's file name (see :func:`table_name`)."""
    match = _NAME.search(Path(path).stem)
    if not match:
        raise PredictionTableError(f"{path}: the file name does not end in iteration_<N> or "
                                   "seed_<S>_iteration_<N> (e.g. crnn_iteration_3.csv)")
    seed = match.group("seed")
    return (int(seed) if seed is not None else None), int(match.group("iteration"))


def same_truth(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether ground-truth rows ``(..., 4)`` agree (to the float32 rounding of stored labels and
    the digits of written tables): ``(...)`` bool, one per song."""
    return np.isclose(a, b, atol=1e-6).all(axis=-1)


def _read_one(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        rows = list(reader)
    required = ["song_id", *columns(GT)]
    missing = [c for c in required if c not in header]
    if missing:
        raise PredictionTableError(f"{path}: missing columns {missing}")
    present = [name for name in INPUTS if all(c in header for c in columns(name))]
    partial = [c for name in INPUTS if name not in present for c in columns(name) if c in header]
    if partial:
        raise PredictionTableError(f"{path}: columns {partial} without the rest of their input's "
                                   "four (mean and std of valence and arousal)")
    if not present:
        raise PredictionTableError(
            f"{path}: no prediction columns (expected {columns('mixed')} or {columns('sep')})")
    if not rows:
        raise PredictionTableError(f"{path}: no rows")

    ids = [normalize_song_id(r["song_id"]) for r in rows]
    duplicates = sorted(s for s, n in collections.Counter(ids).items() if n > 1)
    if duplicates:
        raise PredictionTableError(f"{path}: duplicate song ids {duplicates[:10]}")

    def matrix(prefix: str) -> np.ndarray:
        out = np.empty((len(rows), len(LABEL_NAMES)))
        for k, row in enumerate(rows):
            for d, column in enumerate(columns(prefix)):
                try:
                    out[k, d] = float(row[column])
                except (TypeError, ValueError):
                    out[k, d] = np.nan
                if not np.isfinite(out[k, d]):
                    raise PredictionTableError(
                        f"{path}: song {ids[k]}, column {column}: {row[column]!r} is not a "
                        "finite number")
        return out

    return ids, matrix(GT), {name: matrix(name) for name in present}


def _merge(key: tuple[int | None, int], paths: list[Path]) -> IterationTable:
    seed, iteration = key
    ids, truth, predictions = _read_one(paths[0])
    order = {song: k for k, song in enumerate(ids)}
    for path in paths[1:]:
        other_ids, other_truth, other_predictions = _read_one(path)
        if set(other_ids) != set(ids):
            raise PredictionTableError(
                f"{path}: its songs differ from those of {paths[0]} (same iteration {iteration})")
        perm = np.array([order[s] for s in other_ids])
        inverse = np.argsort(perm)
        if not same_truth(other_truth[inverse], truth).all():
            raise PredictionTableError(
                f"{path}: ground truth differs from {paths[0]} for the same songs")
        for name, values in other_predictions.items():
            if name in predictions:
                raise PredictionTableError(
                    f"{path}: '{name}' predictions for iteration {iteration} given twice")
            predictions[name] = values[inverse]
    return IterationTable(iteration, seed, tuple(ids), truth,
                          {n: predictions[n] for n in INPUTS if n in predictions},
                          tuple(str(p) for p in paths))


def read_iterations(paths: Iterable[os.PathLike | str]) -> list[IterationTable]:
    """Read and merge tables by (seed, iteration); sorted by iteration, then seed. A set of tables
    must be all of one seed (no ``seed_`` in the names) or all named by seed."""
    grouped: dict[tuple[int | None, int], list[Path]] = {}
    for path in sorted(Path(p) for p in paths):
        grouped.setdefault(table_key(path), []).append(path)
    if not grouped:
        raise PredictionTableError("no prediction tables given")
    if len({seed is None for seed, _ in grouped}) > 1:
        raise PredictionTableError("tables with and without seed_<S> in their names were given "
                                   "together; evaluate one run at a time")
    tables = [_merge(key, grouped[key]) for key in sorted(grouped, key=lambda k: (k[1], k[0] or 0))]
    incomplete = [f"{t.sources[0]} has only {sorted(t.predictions)}" for t in tables
                  if sorted(t.predictions) != sorted({n for u in tables for n in u.predictions})]
    if incomplete:
        raise PredictionTableError("every iteration needs the same inputs: "
                                   + "; ".join(incomplete[:5]))
    return tables


def write_prediction_table(path: os.PathLike | str, song_ids: Iterable[str], truth: np.ndarray,
                           predictions: dict[str, np.ndarray]) -> None:
    """Write one iteration's table; ``predictions`` maps input name -> (songs, 4). Atomic."""
    names = [name for name in INPUTS if name in predictions]
    header = ["song_id", *columns(GT), *(c for name in names for c in columns(name))]
    rows = ([song, *(repr(float(v)) for v in (*truth[k], *(x for name in names
                                                           for x in predictions[name][k])))]
            for k, song in enumerate(song_ids))
    files.write_rows(path, header, rows)       # floats exact (repr), atomic
