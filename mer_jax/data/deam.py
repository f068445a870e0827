"""Reader for DEAM, the MediaEval Database for Emotional Analysis in Music (Aljanaki, Yang &
Soleymani, PLoS ONE 2017): 1,802 songs with static valence/arousal ratings on 1-9.

DEAM's two archives, extracted anywhere under ROOT (the official folders are kept as they are):

    .../static_annotations_averaged_songs_1_2000.csv     song_id, valence_mean, valence_std,
    .../static_annotations_averaged_songs_2000_2058.csv  arousal_mean, arousal_std (+ others)
    .../MEMD_audio/<song_id>.mp3

(in DEAM_Annotations.zip the CSVs sit in ``annotations/annotations averaged per song/song_level/``;
DEAM_audio.zip holds ``MEMD_audio/``). The second file is optional; a song in both files must
carry the same ratings there. Ratings are mapped to 0-1 like emoMusic's (DEAM's songs 1-1000 are
the 2013 emoMusic set). Missing audio or std is reported in ``Dataset.skipped``; duplicate ids
within a file, conflicting ratings and ratings outside [1, 9] (std outside [0, 8]) raise
DatasetError.
"""
from __future__ import annotations

import os
from pathlib import Path

from mer_jax.data.songs import (SCALES, Dataset, DatasetError, Skipped, Song, check_unique,
                                normalize_song_id, read_rows, scaled_labels, sort_key)

ANNOTATION_FILES = ("static_annotations_averaged_songs_1_2000.csv",
                    "static_annotations_averaged_songs_2000_2058.csv")
AUDIO_DIR = "MEMD_audio"
COLUMNS = {name: name for name in ("valence_mean", "arousal_mean", "valence_std", "arousal_std")}


SEARCH_DEPTH = 5     # DEAM_Annotations/annotations/annotations averaged per song/song_level/


def _find(root: Path, name: str) -> Path | None:
    """The shallowest ``name`` at most SEARCH_DEPTH folders below root (first in sorted order)."""
    level = [root]
    for _ in range(SEARCH_DEPTH + 1):
        for folder in level:
            if (folder / name).exists():
                return folder / name
        level = sorted(p for folder in level for p in _subfolders(folder))
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:   # unreadable folders are not searched
        return []


def is_deam_layout(root: os.PathLike | str) -> bool:
    return Path(root).is_dir() and _find(Path(root), ANNOTATION_FILES[0]) is not None


def _ratings(root: Path) -> dict[str, tuple[dict[str, float | None], Path]]:
    """song id -> (labels on 0-1, the file they came from), over both annotation files."""
    ratings: dict[str, tuple[dict, Path]] = {}
    for name in ANNOTATION_FILES:
        path = _find(root, name)
        if path is None:
            if name == ANNOTATION_FILES[0]:
                raise DatasetError(f"{root}: {name} not found (DEAM_Annotations.zip, extracted)")
            continue
        rows = read_rows(path, ("song_id", *COLUMNS))
        ids = [normalize_song_id(r["song_id"]) for r in rows]
        check_unique(ids, path)
        for song_id, row in zip(ids, rows):
            values = scaled_labels(row, COLUMNS, song_id=song_id, source=path,
                                   scale=SCALES["1-9"])
            if song_id in ratings and ratings[song_id][0] != values:
                raise DatasetError(f"{path}: song {song_id}: ratings differ from those in "
                                   f"{ratings[song_id][1]}")
            ratings.setdefault(song_id, (values, path))
    return ratings


def read_deam(root: os.PathLike | str) -> Dataset:
    """Read an extracted DEAM folder; see the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: DEAM folder not found")
    ratings = _ratings(root)
    audio_dir = _find(root, AUDIO_DIR) or root / AUDIO_DIR
    audio = ({normalize_song_id(p.stem): p for p in audio_dir.glob("*.mp3")}
             if audio_dir.is_dir() else {})
    songs, skipped = [], []
    for song_id in sorted(ratings, key=sort_key):
        values = ratings[song_id][0]
        if any(v is None for v in values.values()):
            skipped.append(Skipped(song_id, "missing annotation value"))
        elif song_id not in audio:
            skipped.append(Skipped(song_id, f"no audio file {AUDIO_DIR}/{song_id}.mp3"))
        else:
            songs.append(Song(song_id=song_id, audio_path=audio[song_id], **values))
    unannotated = tuple(audio[i] for i in sorted(set(audio) - set(ratings), key=sort_key))
    return Dataset(name="DEAM", root=root, songs=tuple(songs), skipped=tuple(skipped),
                   unannotated=unannotated)
