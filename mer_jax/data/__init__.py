"""Dataset readers, chosen by name or detected from a folder's layout, and the synthetic default
dataset.

    pmemo      PMEmo2019: annotations/static_annotations.csv (+ _std.csv), chorus/ (also the
               synthetic dataset's layout)
    emomusic   emoMusic ("1000 Songs"): static_annotations.csv, clips/
    deam       DEAM: static_annotations_averaged_songs_1_2000.csv (+ 2000_2058), MEMD_audio/
    4q         quadrant-labelled folders (the 4Q dataset): annotations.csv (Song, Quadrant), Q1-Q4/
    csv        any folder: annotations.csv (path, valence/arousal mean/std) + dataset.json (scale)

Every reader returns a :class:`Dataset` of :class:`Song` s with labels on 0-1 and the songs it
left out, each with its reason.
"""
from __future__ import annotations

import os
from pathlib import Path

from mer_jax.data.annotated_csv import is_csv_layout, read_csv_dataset
from mer_jax.data.deam import is_deam_layout, read_deam
from mer_jax.data.emomusic import is_emomusic_layout, read_emomusic
from mer_jax.data.fourq import is_quadrant_layout, read_quadrant_folders
from mer_jax.data.pmemo import is_pmemo_layout, read_pmemo
from mer_jax.data.songs import LABEL_NAMES, Dataset, DatasetError, Skipped, Song

# name -> (layout test, reader, what identifies the layout), in the order tried when detecting
DATASETS = {
    "pmemo": (is_pmemo_layout, read_pmemo, "annotations/static_annotations.csv"),
    "emomusic": (is_emomusic_layout, read_emomusic, "static_annotations.csv"),
    "4q": (is_quadrant_layout, read_quadrant_folders, "annotations.csv (Song, Quadrant) + Q1-Q4/"),
    "csv": (is_csv_layout, read_csv_dataset, "annotations.csv (path, valence_mean, ...)"),
    "deam": (is_deam_layout, read_deam, "static_annotations_averaged_songs_1_2000.csv")}
DATASET_CHOICES = ("auto", *DATASETS)


def detect_dataset(data_dir: os.PathLike | str) -> str:
    """The name of the first layout in DATASETS that ``data_dir`` matches."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: dataset folder not found")
    for name, (matches, _, _) in DATASETS.items():
        if matches(data_dir):
            return name
    raise DatasetError(f"{data_dir}: no known dataset layout; looked for "
                       + "; ".join(f"{name}: {what}" for name, (_, _, what) in DATASETS.items()))


def read_dataset(data_dir: os.PathLike | str, kind: str = "auto") -> Dataset:
    """Read ``data_dir`` with the reader named ``kind`` (DATASETS), or the detected one."""
    if kind == "auto":
        kind = detect_dataset(data_dir)
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose from {DATASET_CHOICES}")
    return DATASETS[kind][1](data_dir)


__all__ = ["DATASETS", "DATASET_CHOICES", "detect_dataset", "read_dataset", "read_pmemo",
           "read_emomusic", "read_deam", "read_csv_dataset", "read_quadrant_folders", "Dataset",
           "DatasetError", "Skipped", "Song", "LABEL_NAMES"]
