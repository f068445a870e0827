"""Reader for the static annotations of emoMusic ("1000 Songs for Emotional Analysis of Music").

    ROOT/static_annotations.csv   song_id, mean_arousal, std_arousal, mean_valence, std_valence
    ROOT/clips/<song_id>.mp3      (the official release names the folder clips_45seconds/)

Ratings are on the 1-9 scale and are mapped to PMEmo's 0-1 scale: mean -> (mean - 1) / 8,
std -> std / 8. Missing audio or std is reported in ``Dataset.skipped``; duplicate ids and ratings
outside [1, 9] (std outside [0, 8]) raise DatasetError.
"""
from __future__ import annotations

import os
from pathlib import Path

from mer_jax.data.songs import (SCALES, Dataset, Skipped, Song, check_unique, normalize_song_id,
                                read_rows, scaled_labels, sort_key)

ANNOTATIONS = "static_annotations.csv"
CLIP_DIRS = ("clips", "clips_45seconds")
COLUMNS = {"valence_mean": "mean_valence", "arousal_mean": "mean_arousal",
           "valence_std": "std_valence", "arousal_std": "std_arousal"}


def is_emomusic_layout(root: os.PathLike | str) -> bool:
    return (Path(root) / ANNOTATIONS).is_file()


def read_emomusic(root: os.PathLike | str) -> Dataset:
    root = Path(root)
    path = root / ANNOTATIONS
    rows = read_rows(path, ("song_id", *COLUMNS.values()))
    ids = [normalize_song_id(r["song_id"]) for r in rows]
    check_unique(ids, path)
    clip_dir = next((root / d for d in CLIP_DIRS if (root / d).is_dir()), root / CLIP_DIRS[0])
    songs, skipped = [], []
    for song_id, row in sorted(zip(ids, rows), key=lambda item: sort_key(item[0])):
        values = scaled_labels(row, COLUMNS, song_id=song_id, source=path, scale=SCALES["1-9"])
        audio = clip_dir / f"{song_id}.mp3"
        if any(v is None for v in values.values()):
            skipped.append(Skipped(song_id, "missing annotation value"))
        elif not audio.is_file():
            skipped.append(Skipped(song_id, f"no audio file {audio.relative_to(root)}"))
        else:
            songs.append(Song(song_id=song_id, audio_path=audio, **values))
    named = set(ids)
    unannotated = tuple(sorted((p for p in clip_dir.glob("*.mp3")
                                if normalize_song_id(p.stem) not in named),
                               key=lambda p: sort_key(normalize_song_id(p.stem))))
    return Dataset(name="emoMusic", root=root, songs=tuple(songs), skipped=tuple(skipped),
                   unannotated=unannotated)
