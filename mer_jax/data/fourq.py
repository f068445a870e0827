"""Reader for quadrant-labelled folders: the 4Q audio emotion dataset (Panda, Malheiro & Paiva,
IEEE TAFFC 2018) and any folder in its layout.

    ROOT/annotations.csv      Song, Quadrant (Q1-Q4), ... (other columns are kept out)
    ROOT/Q1/ ... ROOT/Q4/     <Song>.mp3 (any audio suffix), in the folder of its quadrant

Labels are quadrants, not mean/std: each song's regression targets are documented proxies, the
quadrant's centre (valence, arousal in 0.25 / 0.75) with std ``quadrants.PROXY_STD`` on both axes,
and the dataset is marked ``categorical`` so that it is scored by quadrant accuracy
(``mer_jax.quadrants``). A song whose audio is missing from its quadrant's folder is skipped with
the reason (naming the folder it is in, if any); audio that no annotation names is listed in
``unannotated``; duplicate ids and quadrants other than Q1-Q4 raise DatasetError.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from mer_jax.audio import AUDIO_SUFFIXES
from mer_jax.data.songs import (Dataset, DatasetError, Skipped, Song, check_unique,
                                normalize_song_id, sort_key)
from mer_jax.quadrants import CENTRES, PROXY_STD, QUADRANTS

ANNOTATIONS = "annotations.csv"


def is_quadrant_layout(root: os.PathLike | str) -> bool:
    """An annotations.csv with Song and Quadrant columns beside at least one Q1-Q4 folder."""
    root = Path(root)
    path = root / ANNOTATIONS
    if not path.is_file() or not any((root / q).is_dir() for q in QUADRANTS):
        return False
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [c.strip() for c in next(csv.reader(f), [])]
    return {"Song", "Quadrant"} <= set(header)


def _audio(root: Path) -> dict[str, Path]:
    """song id -> audio file, over the four quadrant folders."""
    found = {}
    for quadrant in QUADRANTS:
        folder = root / quadrant
        if folder.is_dir():
            for entry in os.scandir(folder):
                path = Path(entry.path)
                if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("."):
                    found[normalize_song_id(path.stem)] = path
    return found


def read_quadrant_folders(root: os.PathLike | str) -> Dataset:
    """Read a quadrant-labelled folder; see the module docstring."""
    root = Path(root)
    path = root / ANNOTATIONS
    if not is_quadrant_layout(root):
        raise DatasetError(f"{root}: not a quadrant-labelled folder ({ANNOTATIONS} with Song and "
                           "Quadrant columns beside Q1/ ... Q4/)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k}
                for r in csv.DictReader(f)]
    ids = [normalize_song_id(r["Song"]) for r in rows]
    check_unique(ids, path)
    audio = _audio(root)
    songs, skipped = [], []
    for song_id, row in sorted(zip(ids, rows), key=lambda item: sort_key(item[0])):
        quadrant = row["Quadrant"].upper()
        if quadrant not in QUADRANTS:
            raise DatasetError(f"{path}: song {song_id}: quadrant {row['Quadrant']!r} is not one "
                               f"of {', '.join(QUADRANTS)}")
        found = audio.get(song_id)
        if found is None:
            skipped.append(Skipped(song_id, f"no audio file in {quadrant}/"))
        elif found.parent.name != quadrant:
            skipped.append(Skipped(song_id, f"annotated {quadrant} but its audio is in "
                                            f"{found.parent.name}/"))
        else:
            valence, arousal = CENTRES[quadrant]
            songs.append(Song(song_id=song_id, audio_path=found, valence_mean=valence,
                              arousal_mean=arousal, valence_std=PROXY_STD,
                              arousal_std=PROXY_STD))
    named = set(ids)
    unannotated = tuple(sorted((p for i, p in audio.items() if i not in named),
                               key=lambda p: sort_key(normalize_song_id(p.stem))))
    return Dataset(name="4Q", root=root, songs=tuple(songs), skipped=tuple(skipped),
                   unannotated=unannotated, categorical=True)
