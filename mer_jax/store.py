"""The preprocessed-feature store: one chunked, compressed Zarr v3 store per dataset and config.

Layout (N songs; one song per chunk; zstd):
    ids                  (N,)                 str     song ids (sorted as the reader sorts them)
    labels               (N, 4)               float32 valence mean, arousal mean, valence std,
                                                      arousal std
    status               (N,)                 int8    0 pending, 1 done, 2 failed
    errors               (N,)                 str     reason of a failure ("" otherwise)
    sources              (N,)                 str     size:sha256 of the audio the song was
                                                      made from
    mixed/spectrogram    (N, 129, T)          float32 |STFT| or mel bands of the mono mix, T = 2048
    sep/spectrogram      (N, 4, 129, T)       float32 the same for vocals, bass, drums, other
    sep/stems            (N, 4, samples)      float32 the separated mono stems
    mixed/opensmile      (N, 6373)            float32 ComParE_2016 functionals of the mix
    sep/opensmile        (N, 25492)           float32 the four stems' functionals, concatenated
attrs: config (the preprocessing config), dataset, skipped songs, feature names, and the hashes
of what made the arrays (``mer_jax.preprocess.HASHES``; ``MADE_BY`` says which hash made which).

A song's chunks are written first and its ``status`` last (each chunk file is replaced
atomically by Zarr's local store), so a run killed at any moment leaves every song either done or
pending, and a rerun redoes only the pending and failed ones (and any song whose audio file
changed since). Writers lock the songs they write (``StoreLock``: byte ranges of one lock file,
one byte per song): a second writer of any of those songs fails fast, while writers of disjoint
songs - the shards of ``pipelines.preprocess --shard i/n`` - fill one store concurrently.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import struct
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from mer_jax import files
from mer_jax.data.songs import STEM_ORDER

PENDING, DONE, FAILED = 0, 1, 2
STEMS = STEM_ORDER   # the one home: mer_jax.data.songs
LOCK_FILE = ".preprocess.lock"
# Array -> the attributes holding the hash of what made it, besides each song's audio (see
# mer_jax.preprocess.HASHES), narrowest first: stores made before a narrower hash existed carry
# only the wider ones after it (config_hash, the widest, every store has).
MADE_BY = {"mixed/spectrogram": ("mixed_hash", "config_hash"), "sep/spectrogram": ("config_hash",),
           "sep/stems": ("stems_hash", "config_hash"),
           "mixed/opensmile": ("mixed_opensmile_hash", "mixed_hash", "config_hash"),
           "sep/opensmile": ("stems_hash", "config_hash")}


class StoreError(RuntimeError):
    """A store that cannot be used (locked by another writer, incomplete, wrong config)."""


@dataclasses.dataclass(frozen=True)
class StoreShapes:
    songs: int
    bins: int
    time_bins: int
    samples: int
    opensmile: int


def _compressors():
    return [ZstdCodec(level=3)]


def _array(group, name, shape, dtype, fill=0):
    chunks = (1,) + tuple(shape[1:])
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                              compressors=_compressors() if dtype is not str else None)


def create_store(path: os.PathLike | str, ids: list[str], labels: np.ndarray, shapes: StoreShapes,
                 attrs: dict) -> Path:
    """Create an empty store at ``path`` atomically (built beside it, then renamed)."""
    with files.atomic_path(path) as tmp:
        _build_store(tmp, ids, labels, shapes, attrs)
    return Path(path)


def _build_store(tmp: Path, ids: list[str], labels: np.ndarray, shapes: StoreShapes,
                 attrs: dict) -> None:
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    n = shapes.songs
    _array(root, "ids", (n,), str, fill="")[:] = np.array(ids, dtype=object)
    _array(root, "labels", (n, 4), "float32")[:] = labels.astype(np.float32)
    _array(root, "status", (n,), "int8")
    _array(root, "errors", (n,), str, fill="")
    _array(root, "sources", (n,), str, fill="")
    mixed, sep = root.create_group("mixed"), root.create_group("sep")
    _array(mixed, "spectrogram", (n, shapes.bins, shapes.time_bins), "float32")
    _array(sep, "spectrogram", (n, len(STEMS), shapes.bins, shapes.time_bins), "float32")
    _array(sep, "stems", (n, len(STEMS), shapes.samples), "float32")
    _array(mixed, "opensmile", (n, shapes.opensmile), "float32")
    _array(sep, "opensmile", (n, len(STEMS) * shapes.opensmile), "float32")
    root.attrs.update(attrs)


class StoreLock:
    """Exclusive, non-blocking lock on songs ``[start, stop)`` of a store (None: to the end, i.e.
    all of them); a writer whose songs overlap another's fails fast with StoreError.

    Linux open-file-description byte-range locks (one byte per song): they conflict between
    processes and between two locks of one process alike, and vanish with the process (a killed
    writer never leaves a stale lock). Where they do not exist, the whole store is locked."""

    def __init__(self, path: os.PathLike | str, start: int = 0, stop: int | None = None):
        self.path = Path(path) / LOCK_FILE
        self.start, self.stop = start, stop
        self._fd: int | None = None

    def _lock(self, operation: int) -> None:
        if not hasattr(fcntl, "F_OFD_SETLK"):      # pragma: no cover - not Linux
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB if operation == fcntl.F_WRLCK
                        else fcntl.LOCK_UN)
            return
        length = 0 if self.stop is None else self.stop - self.start    # 0: to the end
        request = struct.pack("hhqqi", operation, os.SEEK_SET, self.start, length, 0)
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, request)

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fcntl.F_WRLCK)
        except OSError:                             # EAGAIN / EACCES: held by another writer
            os.close(self._fd)
            self._fd = None
            songs = "all songs" if self.start == 0 and self.stop is None else (
                f"song indices {self.start}..{'end' if self.stop is None else self.stop - 1}")
            raise StoreError(f"{self.path.parent}: {songs} are being written by another "
                             "preprocess (a run or shard covering them); wait for it to "
                             "finish") from None
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            self._lock(fcntl.F_UNLCK)
            os.close(self._fd)
            self._fd = None


def write_song(root: zarr.Group, index: int, *, mixed_spectrogram: np.ndarray,
               sep_spectrogram: np.ndarray, stems: np.ndarray, mixed_opensmile: np.ndarray,
               sep_opensmile: np.ndarray, source: str) -> None:
    """Write one song's arrays, then mark it done (the status chunk is written last)."""
    root["mixed/spectrogram"][index] = mixed_spectrogram
    root["sep/spectrogram"][index] = sep_spectrogram
    root["sep/stems"][index] = stems
    root["mixed/opensmile"][index] = mixed_opensmile
    root["sep/opensmile"][index] = sep_opensmile
    root["errors"][index] = ""
    root["sources"][index] = source
    root["status"][index] = DONE


def mark_failed(root: zarr.Group, index: int, reason: str, source: str) -> None:
    root["errors"][index] = reason
    root["sources"][index] = source
    root["status"][index] = FAILED


class FeatureStore:
    """Read access to a finished (or partial) store."""

    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path}: not a mer-jax feature store")
        self.root = zarr.open_group(str(self.path), mode="r")
        self.ids = [str(i) for i in self.root["ids"][:]]
        self.labels = self.root["labels"][:]
        self.status = self.root["status"][:]

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs)

    @property
    def done(self) -> np.ndarray:
        """Indices of the songs whose features are complete."""
        return np.flatnonzero(self.status == DONE)

    def failures(self) -> dict[str, str]:
        errors = self.root["errors"][:]
        return {self.ids[i]: str(errors[i]) for i in np.flatnonzero(self.status == FAILED)}

    def inputs_key(self, name: str, splits: list[dict]) -> str:
        """16 hex digits identifying array ``name`` ("mixed/opensmile", ...) of every song of
        ``splits`` as made: the hash of what made the array (``MADE_BY``) and the audio each song
        was made from (``sources``). What is computed from them (a training run, forests, an
        experiment's stage) is keyed by it: a song whose audio file changed, which preprocessing
        redoes, changes it; a setting that made other arrays (e.g. the spectrogram, for the
        openSMILE features) does not."""
        attrs = self.attrs
        made_by = next(attrs[a] for a in MADE_BY[name] if a in attrs)
        index_of = {song: i for i, song in enumerate(self.ids)}
        sources = self.root["sources"][:]
        songs = sorted({s for split in splits for s in split["train"] + split["test"]})
        undone = [s for s in songs if s not in index_of or self.status[index_of[s]] != DONE]
        if undone:
            raise StoreError(f"{self.path}: songs of the splits not preprocessed there: "
                             f"{', '.join(undone[:5])}")
        return files.fingerprint(name, made_by, [(s, str(sources[index_of[s]])) for s in songs])

    def array(self, name: str) -> zarr.Array:
        """e.g. ``"mixed/spectrogram"``, ``"sep/opensmile"``."""
        return self.root[name]
