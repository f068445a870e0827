"""Reader for the official PMEmo2019 layout (Zhang et al., ICMR 2018).

    ROOT/metadata.csv                              musicId, fileName, ...
    ROOT/annotations/static_annotations.csv        musicId, Arousal(mean), Valence(mean)
    ROOT/annotations/static_annotations_std.csv    musicId, Arousal(std), Valence(std)
    ROOT/chorus/<fileName or musicId.mp3>

Labels are already on 0-1. Songs without audio or without std are reported in
``Dataset.skipped``; duplicate ids and labels outside [0, 1] raise DatasetError. The synthetic
dataset (``mer_jax.data.synth``) writes the same layout with ``.wav`` chorus files.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from mer_jax.audio import AUDIO_SUFFIXES
from mer_jax.data.songs import (Dataset, DatasetError, Skipped, Song, check_range, check_unique,
                                normalize_song_id, parse_label, read_rows, sort_key)

MEAN_FILE = Path("annotations/static_annotations.csv")
STD_FILE = Path("annotations/static_annotations_std.csv")
AUDIO_DIR = Path("chorus")


def is_pmemo_layout(root: os.PathLike | str) -> bool:
    return (Path(root) / MEAN_FILE).is_file()


def _read_table(path: Path, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Rows of a CSV keyed by normalized musicId; checks the columns and duplicate ids."""
    rows = read_rows(path, ("musicId",) + columns)
    ids = [normalize_song_id(r["musicId"]) for r in rows]
    check_unique(ids, path)
    return dict(zip(ids, rows))


def _audio_files(root: Path) -> dict[str, Path]:
    """Map of song id -> audio path, from metadata.csv's fileName where present, else the stem."""
    chorus = root / AUDIO_DIR
    found = {}
    if chorus.is_dir():
        for entry in os.scandir(chorus):
            p = Path(entry.path)
            if p.suffix.lower() in AUDIO_SUFFIXES:
                found[normalize_song_id(p.stem)] = p
    meta = root / "metadata.csv"
    if meta.is_file():
        with open(meta, newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                name = (row.get("fileName") or "").strip()
                if name and (chorus / name).is_file():
                    found[normalize_song_id(row["musicId"])] = chorus / name
    return found


def read_pmemo(root: os.PathLike | str) -> Dataset:
    """Read a PMEmo-layout folder; see the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: PMEmo folder not found")
    means = _read_table(root / MEAN_FILE, ("Arousal(mean)", "Valence(mean)"))
    stds = _read_table(root / STD_FILE, ("Arousal(std)", "Valence(std)"))
    audio = _audio_files(root)
    songs, skipped = [], []
    for song_id in sorted(means, key=sort_key):
        row = means[song_id]
        values = {}
        for key, column, table, source in (
                ("valence_mean", "Valence(mean)", row, MEAN_FILE),
                ("arousal_mean", "Arousal(mean)", row, MEAN_FILE),
                ("valence_std", "Valence(std)", stds.get(song_id, {}), STD_FILE),
                ("arousal_std", "Arousal(std)", stds.get(song_id, {}), STD_FILE)):
            value = parse_label(table.get(column), song_id=song_id, column=column,
                                source=root / source)
            if value is not None:
                check_range(song_id, column, value, root / source)
            values[key] = value
        if values["valence_mean"] is None or values["arousal_mean"] is None:
            skipped.append(Skipped(song_id, "missing mean annotation"))
        elif values["valence_std"] is None or values["arousal_std"] is None:
            skipped.append(Skipped(song_id, f"missing std annotation in {STD_FILE}"))
        elif song_id not in audio:
            skipped.append(Skipped(song_id, f"no audio file in {AUDIO_DIR}/"))
        else:
            songs.append(Song(song_id=song_id, audio_path=audio[song_id], **values))
    for song_id in sorted(set(stds) - set(means), key=sort_key):
        skipped.append(Skipped(song_id, f"std annotation without mean annotation in {MEAN_FILE}"))
    unannotated = tuple(audio[i] for i in sorted(set(audio) - set(means) - set(stds),
                                                 key=sort_key))
    return Dataset(name="PMEmo", root=root, songs=tuple(songs), skipped=tuple(skipped),
                   unannotated=unannotated)
