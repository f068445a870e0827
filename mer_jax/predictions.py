"""Prediction tables in the paper authors' format: one CSV per Monte-Carlo iteration.

Columns: ``song_id``, the ground truth ``gt_{valence,arousal}_{mean,std}``, and for each input
representation ("mixed", "sep") present, ``<input>_{valence,arousal}_{mean,std}``. A training run
writes one table per input (``mixed_iteration_3.csv``, ``sep_iteration_3.csv``); tables of the
same iteration are merged on ``song_id``, so the evaluation reads the authors' combined files and
ours alike. The iteration number is the last integer in the file name.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mer_jax.data.songs import LABEL_NAMES, normalize_song_id

INPUTS = ("mixed", "sep")
GT = "gt"


def columns(prefix: str) -> list[str]:
    """``columns("sep")`` -> sep_valence_mean, sep_arousal_mean, sep_valence_std, sep_arousal_std."""
    return [f"{prefix}_{name}" for name in LABEL_NAMES]


TABLE_COLUMNS = ["song_id", *columns(GT), *columns("mixed"), *columns("sep")]


class PredictionTableError(ValueError):
    """A prediction table that cannot be evaluated; the message names the file."""


@dataclasses.dataclass(frozen=True)
class IterationTable:
    """All predictions of one Monte-Carlo iteration.

    song_ids: (songs,) strings; truth: (songs, 4) float64; predictions: input name -> (songs, 4),
    columns ordered as LABEL_NAMES (valence mean, arousal mean, valence std, arousal std).
    """

    iteration: int
    song_ids: tuple[str, ...]
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    sources: tuple[str, ...]


def iteration_number(path: os.PathLike | str) -> int:
    match = re.search(r"(\d+)\D*$", Path(path).stem)
    if not match:
        raise PredictionTableError(f"{path}: no iteration number in the file name "
                                   "(expected e.g. crnn_iteration_3.csv)")
    return int(match.group(1))


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
    if not present:
        raise PredictionTableError(
            f"{path}: no prediction columns (expected {columns('mixed')} or {columns('sep')})")
    if not rows:
        raise PredictionTableError(f"{path}: no rows")

    def matrix(prefix: str) -> np.ndarray:
        try:
            return np.array([[float(r[c]) for c in columns(prefix)] for r in rows])
        except (TypeError, ValueError) as err:
            raise PredictionTableError(f"{path}: non-numeric {prefix} value ({err})") from None

    ids = [normalize_song_id(r["song_id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise PredictionTableError(f"{path}: duplicate song ids")
    return ids, matrix(GT), {name: matrix(name) for name in present}


def _merge(iteration: int, paths: list[Path]) -> IterationTable:
    ids, truth, predictions = _read_one(paths[0])
    order = {song: k for k, song in enumerate(ids)}
    for path in paths[1:]:
        other_ids, other_truth, other_predictions = _read_one(path)
        if set(other_ids) != set(ids):
            raise PredictionTableError(
                f"{path}: its songs differ from those of {paths[0]} (same iteration {iteration})")
        perm = np.array([order[s] for s in other_ids])
        inverse = np.argsort(perm)
        if not np.allclose(other_truth[inverse], truth, atol=1e-6):
            raise PredictionTableError(
                f"{path}: ground truth differs from {paths[0]} for the same songs")
        for name, values in other_predictions.items():
            if name in predictions:
                raise PredictionTableError(
                    f"{path}: '{name}' predictions for iteration {iteration} given twice")
            predictions[name] = values[inverse]
    return IterationTable(iteration, tuple(ids), truth,
                          {n: predictions[n] for n in INPUTS if n in predictions},
                          tuple(str(p) for p in paths))


def read_iterations(paths: Iterable[os.PathLike | str]) -> list[IterationTable]:
    """Read and merge tables by iteration number; sorted by iteration."""
    grouped: dict[int, list[Path]] = {}
    for path in sorted(Path(p) for p in paths):
        grouped.setdefault(iteration_number(path), []).append(path)
    if not grouped:
        raise PredictionTableError("no prediction tables given")
    return [_merge(it, grouped[it]) for it in sorted(grouped)]


def write_prediction_table(path: os.PathLike | str, song_ids: Iterable[str], truth: np.ndarray,
                           predictions: dict[str, np.ndarray]) -> None:
    """Write one iteration's table; ``predictions`` maps input name -> (songs, 4). Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["song_id", *columns(GT)]
    for name in INPUTS:
        if name in predictions:
            header += columns(name)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for k, song in enumerate(song_ids):
            row = [song, *truth[k]]
            for name in INPUTS:
                if name in predictions:
                    row += list(predictions[name][k])
            writer.writerow([row[0]] + [repr(float(v)) for v in row[1:]])
    os.replace(tmp, path)
