"""Reader for any folder of annotated audio: one ``annotations.csv`` and a declared rating scale.

    ROOT/annotations.csv   path,valence_mean,arousal_mean,valence_std,arousal_std
    ROOT/dataset.json      {"scale": "1-9"}     (or "0-1"; other keys are ignored)
    ROOT/<path>            the audio, any suffix libsndfile decodes (paths may be absolute)

Each row is one song; its id is ``path`` without the suffix (``rock/song1``). Means must lie on
the declared scale and stds in [0, high - low]; both are mapped to 0-1 (1-9: mean -> (mean - 1)
/ 8, std -> std / 8). Other columns are ignored. A row with an empty cell or a missing audio file
is reported in ``Dataset.skipped``; audio under ROOT that no row names is listed in
``unannotated``; a missing or unknown scale, duplicate paths and values off the scale raise
DatasetError.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePosixPath

from mer_jax.audio import AUDIO_SUFFIXES
from mer_jax.data.songs import (SCALES, LABEL_NAMES, Dataset, DatasetError, Skipped, Song,
                                check_unique, read_rows, scaled_labels, sort_key)

ANNOTATIONS = "annotations.csv"
DECLARATION = "dataset.json"
COLUMNS = {name: name for name in LABEL_NAMES}


def is_csv_layout(root: os.PathLike | str) -> bool:
    """An annotations.csv whose header holds ``path`` and the four label columns."""
    path = Path(root) / ANNOTATIONS
    if not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = {c.strip() for c in next(csv.reader(f), [])}
    return {"path", *COLUMNS} <= header


def declared_scale(root: Path) -> tuple[float, float]:
    """(low, high) from ROOT/dataset.json; DatasetError saying what to write when absent."""
    path = root / DECLARATION
    hint = (f'declare the annotations\' scale in {path}, e.g. {{"scale": "1-9"}} '
            f"(one of: {', '.join(SCALES)})")
    if not path.is_file():
        raise DatasetError(f"{root}: no rating scale declared: {hint}")
    try:
        scale = json.loads(path.read_text()).get("scale")
    except (ValueError, AttributeError) as err:
        raise DatasetError(f"{path}: not a JSON object ({err}): {hint}") from None
    if scale not in SCALES:
        raise DatasetError(f"{path}: unknown scale {scale!r}: {hint}")
    return SCALES[scale]


def song_id_of(path_cell: str) -> str:
    """``rock/song1.mp3`` -> ``rock/song1`` (posix separators, suffix dropped)."""
    return str(PurePosixPath(path_cell.replace("\\", "/")).with_suffix(""))


def read_csv_dataset(root: os.PathLike | str) -> Dataset:
    """Read an annotated folder; see the module docstring."""
    root = Path(root)
    path = root / ANNOTATIONS
    rows = read_rows(path, ("path", *COLUMNS))
    scale = declared_scale(root)
    ids = [song_id_of(r["path"]) for r in rows]
    check_unique(ids, path)
    songs, skipped = [], []
    for song_id, row in sorted(zip(ids, rows), key=lambda item: sort_key(item[0])):
        values = scaled_labels(row, COLUMNS, song_id=song_id, source=path, scale=scale)
        audio = root / row["path"]
        if any(v is None for v in values.values()):
            missing = [COLUMNS[k] for k, v in values.items() if v is None]
            skipped.append(Skipped(song_id, f"empty {', '.join(missing)}"))
        elif not audio.is_file():
            skipped.append(Skipped(song_id, f"no audio file {row['path']}"))
        else:
            songs.append(Song(song_id=song_id, audio_path=audio, **values))
    named = {os.path.abspath(root / r["path"]) for r in rows}
    unannotated = tuple(sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                               and p.is_file() and os.path.abspath(p) not in named))
    return Dataset(name="annotated csv", root=root, songs=tuple(songs), skipped=tuple(skipped),
                   unannotated=unannotated)
