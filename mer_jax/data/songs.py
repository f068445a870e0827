"""The dataset-independent song record every reader yields, and the checks they share.

Labels are on the 0-1 scale (PMEmo's normalized 9-point ratings). ``Song.labels`` orders them
as the model's targets: (valence mean, arousal mean, valence std, arousal std).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

LABEL_NAMES = ("valence_mean", "arousal_mean", "valence_std", "arousal_std")
# rating scales an annotation file may use; labels are mapped to 0-1 (mean -> (mean - low) / span,
# std -> std / span, span = high - low)
SCALES = {"0-1": (0.0, 1.0), "1-9": (1.0, 9.0)}
STEM_ORDER = ("vocals", "bass", "drums", "other")   # the paper's (and Spleeter's) stem order


class DatasetError(ValueError):
    """A dataset whose annotation files cannot be trusted as a whole (duplicates, bad ranges)."""


@dataclasses.dataclass(frozen=True)
class Song:
    """One annotated excerpt. ``song_id`` is a string (PMEmo's ``musicId`` ``"17"``)."""

    song_id: str
    audio_path: Path
    valence_mean: float
    arousal_mean: float
    valence_std: float
    arousal_std: float

    @property
    def labels(self) -> np.ndarray:
        """float32 (4,): valence mean, arousal mean, valence std, arousal std."""
        return np.array([getattr(self, name) for name in LABEL_NAMES], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A song left out of a dataset, and why (missing audio, missing std, ...)."""

    song_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The usable songs of a dataset (sorted by id), the annotated ones left out with their
    reasons, and the audio files that no annotation names (``unannotated``)."""

    name: str
    root: Path
    songs: tuple[Song, ...]
    skipped: tuple[Skipped, ...] = ()
    unannotated: tuple[Path, ...] = ()
    categorical: bool = False     # labels are Russell quadrants (centre proxies, mer_jax.quadrants)

    def __len__(self) -> int:
        return len(self.songs)

    def __iter__(self):
        return iter(self.songs)

    def report(self) -> str:
        """One line of counts, then one per skipped song (id: reason) and unannotated file."""
        lines = [f"{self.name} at {self.root}: {len(self.songs)} songs usable, "
                 f"{len(self.skipped)} skipped, {len(self.unannotated)} audio files without "
                 "annotation"]
        lines += [f"  skipped {s.song_id}: {s.reason}" for s in self.skipped]
        lines += [f"  no annotation: {p}" for p in self.unannotated]
        return "\n".join(lines)


def normalize_song_id(value: object) -> str:
    """``113``, ``"113"``, ``113.0`` and ``"113.0"`` all become ``"113"``; other text is kept."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return text


def parse_label(value: str | None, *, song_id: str, column: str, source: Path) -> float | None:
    """A label cell as float; ``None`` when empty or NaN; DatasetError when not a number."""
    if value is None or not value.strip() or value.strip().lower() == "nan":
        return None
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(
            f"{source}: song {song_id}: {column} is not a number: {value!r}") from None
    return None if math.isnan(number) else number


def check_unique(ids: list[str], source: Path) -> None:
    seen: set[str] = set()
    dupes = sorted({i for i in ids if i in seen or seen.add(i)})
    if dupes:
        raise DatasetError(f"{source}: duplicate song ids: {', '.join(dupes)}")


def check_range(song_id: str, column: str, value: float, source: Path,
                low: float = 0.0, high: float = 1.0) -> None:
    if not low <= value <= high:
        raise DatasetError(
            f"{source}: song {song_id}: {column} = {value} is outside [{low}, {high}]")


def sort_key(song_id: str):
    """Numeric ids sort numerically, others after them alphabetically."""
    return (0, int(song_id), "") if song_id.isdigit() else (1, 0, song_id)


def read_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """A CSV's rows as dicts with stripped column names and cells (DEAM's header has spaces
    after its commas); DatasetError when the file or a ``required`` column is missing."""
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing} (header: {header})")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def scaled_labels(row: dict[str, str], columns: dict[str, str], *, song_id: str, source: Path,
                  scale: tuple[float, float]) -> dict[str, float | None]:
    """One row's label cells (``columns``: label name -> column) on the 0-1 scale, None where
    empty. Means must lie in [low, high] and stds in [0, high - low] of ``scale``."""
    low, high = scale
    span = high - low
    values = {}
    for key, column in columns.items():
        value = parse_label(row.get(column), song_id=song_id, column=column, source=source)
        if value is not None:
            is_mean = key.endswith("mean")
            check_range(song_id, column, value, source, *((low, high) if is_mean else (0.0, span)))
            value = (value - low) / span if is_mean else value / span
        values[key] = value
    return values
