"""Preprocessing: dataset -> separated stems, spectrograms and openSMILE features -> Zarr store.

Per song (``process_song``): decode the clip (44.1 kHz, cut/padded to ``clip_seconds``), separate
it into vocals/bass/drums/other, compute the |STFT| spectrograms of the mono mix and of each stem
(one jitted call, shape (5, 129, 2048)) and the openSMILE functionals of each. ``preprocess``
runs that over a dataset with optional worker processes and writes each song into the store as it
completes (on a GPU/TPU the separator and the spectrograms run in the parent, batched over songs,
while the workers decode the clips and compute the openSMILE features on CPU); the store's name
holds a hash of the config and of the dataset's songs, so a changed config or dataset never
reuses stale data; a store that differs from another in the same folder only in its spectrograms
copies that one's stems and openSMILE features (:data:`HASHES`, :func:`_reuse_stems`).
"""
from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import zarr
from tqdm import tqdm

from mer_jax import audio as audio_io
from mer_jax import files, runtime
from mer_jax import store as store_lib
from mer_jax.data import Dataset, DatasetError, read_dataset
from mer_jax.features import opensmile_features
from mer_jax.features.config import PreprocessConfig
from mer_jax.features.spectrogram import spectrogram
from mer_jax.separation import (OPEN_UNMIX, SeparationError, Spleeter4Separator, make_separator,
                                separator_fingerprint, separator_label)
from mer_jax.separation.openunmix_weights import load_weights as load_open_unmix

SEPARATOR_BATCH = 1    # songs per separator call on an accelerator: on an H200 8 songs per call
                       # took 0.049 s per song, one 0.030 s (BENCHMARKS.md)

def dataset_fingerprint(dataset: Dataset) -> dict:
    """What identifies the dataset: its songs' ids, labels and audio file names. (Each song's
    audio content is tracked per song, see :func:`source_fingerprint`.)"""
    digest = hashlib.sha256()
    for song in dataset:
        digest.update(f"{song.song_id}|{song.labels.tobytes().hex()}|{song.audio_path.name}\n"
                      .encode())
    return {"name": dataset.name, "songs": len(dataset), "digest": digest.hexdigest()}


def source_fingerprint(path: Path) -> str:
    """``"size:sha256"`` of a song's audio file (the first 32 hex digits): a song whose file
    changed is redone. Its content, not its modification time, so that a copy, a checkout or a
    remounted data folder (new times, same bytes) reuses the store (hashing costs ~1 ms per MB,
    a song's preprocessing seconds)."""
    return f"{Path(path).stat().st_size}:{files.file_sha256(path)[:32]}"


def inputs_hash(config: PreprocessConfig, dataset: Dataset, separator_files: str | None,
                leave_out: tuple[str, ...] = ()) -> str:
    """16 hex digits of SHA-256 over the config's fields but ``leave_out``, the dataset's songs
    and, for precomputed stems (``stems:DIR``), their files' fingerprint (``separator_files``,
    ``separation.separator_fingerprint``: it reads every stem file, so callers compute it once)."""
    key = {"config": {k: v for k, v in config.to_dict().items() if k not in leave_out},
           "dataset": dataset_fingerprint(dataset)}
    if separator_files is not None:
        key["separator_files"] = separator_files
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def store_path(cache_dir: os.PathLike | str, data_dir: os.PathLike | str, config: PreprocessConfig,
               dataset: Dataset, config_hash: str | None = None) -> tuple[Path, str]:
    """The store's path and config hash: :func:`inputs_hash` of the whole config (``config_hash``
    when the caller has it)."""
    if config_hash is None:
        config_hash = inputs_hash(config, dataset,
                                  separator_fingerprint(config.separator, dataset))
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data_dir).resolve().name) or "dataset"
    label = separator_label(config.separator)
    return Path(cache_dir) / f"{stem}-{label}-{config_hash}.zarr", config_hash


# A store's hashes (attribute -> the config fields it leaves out), each identifying what made some
# of its arrays (mer_jax.store.MADE_BY): two stores with the same value hold the same arrays.
HASHES = {
    "config_hash": (),                                   # everything: the sep spectrograms
    "mixed_hash": ("separator",),                        # the mixed spectrograms
    "stems_hash": ("spectrogram",),                      # the stems and their openSMILE
    "mixed_opensmile_hash": ("separator", "spectrogram"),  # the mix's openSMILE features
}


def store_hashes(config: PreprocessConfig, dataset: Dataset,
                 separator_files: str | None) -> dict[str, str]:
    """:data:`HASHES`' values. A new store reuses the stems of one with the same ``stems_hash``
    (e.g. ``--spectrogram stft`` and ``mel``) instead of separating again (:func:`_reuse_stems`)."""
    return {name: inputs_hash(config, dataset,
                              None if "separator" in leave_out else separator_files, leave_out)
            for name, leave_out in HASHES.items()}


def spectrograms(mono: np.ndarray, stems: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The mono mix ``(n,)`` and stems ``(4, n)`` -> ``(5, F, T)`` spectrograms (one call)."""
    waves = jnp.asarray(np.concatenate([mono[None], stems]))
    return np.asarray(spectrogram(waves, config.spectrogram, config.sample_rate))


def opensmile_rows(mono: np.ndarray, stems: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The mono mix ``(n,)`` and stems ``(4, n)`` -> ``(5, N_FEATURES)`` openSMILE functionals."""
    return np.stack([opensmile_features.functionals(x, config.sample_rate)
                     for x in (mono, *stems)])


def song_features(stems: np.ndarray, spectra: np.ndarray, smile: np.ndarray) -> dict:
    """What the store keeps of a song: stems ``(4, n)``, spectrograms ``(5, F, T)`` and
    functionals ``(5, N_FEATURES)`` of the mix then the stems -> ``store.write_song``'s fields."""
    return {"mixed_spectrogram": spectra[0], "sep_spectrogram": spectra[1:],
            "stems": stems.astype(np.float32), "mixed_opensmile": smile[0],
            "sep_opensmile": np.concatenate(smile[1:])}


def process_song(clip: np.ndarray, stems: np.ndarray, config: PreprocessConfig) -> dict:
    """Features of one song from its clip ``(channels, n)`` and stems ``(4, n)``."""
    mono = audio_io.to_mono(clip)
    return song_features(stems, spectrograms(mono, stems, config),
                         opensmile_rows(mono, stems, config))


class _Worker:
    """Holds a separator (weights loaded once per process) and processes songs by index.

    ``separate=False`` (separation in the parent, :func:`_pipelined`): no separator; the worker
    decodes clips and computes the openSMILE functionals of the parent's stems."""

    def __init__(self, config: PreprocessConfig, cache_dir: str, songs: list,
                 separate: bool = True):
        self.config = config
        self.songs = songs
        self.separator = make_separator(config.separator, cache_dir) if separate else None

    def _clip(self, song) -> np.ndarray:
        return audio_io.load_clip(song.audio_path, sample_rate=self.config.sample_rate,
                                  seconds=self.config.clip_seconds, mono=False).samples

    def __call__(self, index: int):
        song = self.songs[index]
        source = source_fingerprint(song.audio_path)
        try:
            clip = self._clip(song)
            stems = self.separator(clip, song.audio_path, song.song_id)
            features = process_song(clip, stems, self.config)
            return index, source, features, None
        except (audio_io.AudioError, SeparationError) as err:
            return index, source, None, str(err)

    def decode(self, index: int):
        """(index, source, clip (channels, n) or None, error or None)."""
        song = self.songs[index]
        source = source_fingerprint(song.audio_path)
        try:
            return index, source, self._clip(song), None
        except audio_io.AudioError as err:
            return index, source, None, str(err)

    def opensmile(self, mono: np.ndarray, stems: np.ndarray) -> np.ndarray:
        return opensmile_rows(mono, stems, self.config)


_WORKER: _Worker | None = None


def _init_worker(config, cache_dir, songs, separate=True):
    global _WORKER
    _WORKER = _Worker(config, cache_dir, songs, separate)


def _run_worker(index):
    return _WORKER(index)


def _run_decode(index):
    return _WORKER.decode(index)


def _run_opensmile(*args):
    return _WORKER.opensmile(*args)


def shard_songs(n_songs: int, shard: tuple[int, int]) -> tuple[int, int]:
    """Songs ``[start, stop)`` of shard ``(i, n)``, 1 <= i <= n: n contiguous, disjoint blocks
    that cover every song (sizes differ by at most one)."""
    i, n = shard
    if not 1 <= i <= n:
        raise ValueError(f"shard {i}/{n}: need 1 <= i <= n")
    return (i - 1) * n_songs // n, i * n_songs // n


def separator_batch(separator: str, batch: int | None) -> int:
    """Songs per batched separator call in the parent process, 0 for none. ``batch`` None: on
    a GPU/TPU with spleeter4, SEPARATOR_BATCH; on CPU none (each worker separates its songs)."""
    if separator != "spleeter4":
        return 0
    if batch is None:
        return SEPARATOR_BATCH if jax.default_backend() != "cpu" else 0
    return max(0, batch)


def preprocess(data_dir: os.PathLike | str, config: PreprocessConfig,
               cache_dir: os.PathLike | str = "cache", workers: int = 1,
               progress: bool = True, shard: tuple[int, int] = (1, 1),
               dataset: Dataset | None = None, batch: int | None = None) -> Path:
    """Fill (or resume) the store for ``data_dir`` under ``config``; returns its path.

    ``shard=(i, n)``: only the i-th of n disjoint blocks of songs (``shard_songs``); the n shards
    can run at once (e.g. a Slurm job array) into the same store, each locking only its songs.
    ``dataset``: ``read_dataset(data_dir)`` when the caller has already read it. ``batch``:
    songs per batched separator call in this process (:func:`separator_batch`; then ``workers``
    processes decode the clips and compute the openSMILE features around it)."""
    if dataset is None:
        dataset = read_dataset(data_dir)
    if not len(dataset):
        raise DatasetError(f"{data_dir}: no usable songs\n{dataset.report()}")
    stem_files = separator_fingerprint(config.separator, dataset)   # stems:DIR: reads every file
    hashes = store_hashes(config, dataset, stem_files)
    path, _ = store_path(cache_dir, data_dir, config, dataset, hashes["config_hash"])
    if not path.exists():
        _create_store(path, config, dataset, hashes, data_dir)
    start, stop = shard_songs(len(dataset), shard)
    with store_lib.StoreLock(path, start, None if shard[1] == 1 else stop):
        root = zarr.open_group(str(path), mode="r+")
        songs = list(dataset.songs)
        sources = [source_fingerprint(s.audio_path) for s in songs[start:stop]]
        stale = ((root["status"][start:stop] != store_lib.DONE)
                 | (root["sources"][start:stop] != np.array(sources)))
        todo = [start + int(i) for i in np.flatnonzero(stale)]
        label = config.separator + ("" if shard[1] == 1 else f", shard {shard[0]}/{shard[1]}")
        bar = tqdm(total=stop - start, initial=stop - start - len(todo), unit="song",
                   desc=f"preprocessing ({label})", disable=not progress)
        if todo and (donor := _stems_donor(path, dataset)) is not None:
            todo = _reuse_stems(root, donor, todo, songs, config, bar)
        if (batch := separator_batch(config.separator, batch)) and todo:
            _pipelined(root, todo, songs, config, str(cache_dir), max(workers, 1), batch, bar)
        elif workers <= 1 or len(todo) <= 1:
            worker = _Worker(config, str(cache_dir), songs) if todo else None
            results = (worker(i) for i in todo)
            _consume(root, results, bar)
        else:
            if config.separator in OPEN_UNMIX:   # a clear error before any worker starts
                load_open_unmix(config.separator)
            context = multiprocessing.get_context("spawn")
            with runtime.cpu_only_children(), context.Pool(
                    min(workers, len(todo)), initializer=_init_worker,
                    initargs=(config, str(cache_dir), songs)) as pool:
                _consume(root, pool.imap_unordered(_run_worker, todo), bar)
        bar.close()
    return path


def _create_store(path: Path, config: PreprocessConfig, dataset: Dataset, hashes: dict,
                  data_dir) -> None:
    """An empty store for ``dataset`` at ``path``, its attributes saying what makes it (config,
    hashes, dataset, stems, openSMILE); losing a creation race to another process is fine."""
    shapes = store_lib.StoreShapes(
        songs=len(dataset), bins=config.spectrogram.bins,
        time_bins=config.spectrogram.time_bins, samples=config.clip_samples,
        opensmile=opensmile_features.N_FEATURES)
    attrs = {"config": config.to_dict(), **hashes,
             "dataset": {**dataset_fingerprint(dataset), "root": str(Path(data_dir).resolve()),
                         "categorical": dataset.categorical},
             "skipped": {s.song_id: s.reason for s in dataset.skipped},
             "stems": list(store_lib.STEMS),
             "opensmile_version": opensmile_features.opensmile_version(),
             "opensmile_features": opensmile_features.feature_names()}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        store_lib.create_store(path, [s.song_id for s in dataset],
                               np.stack([s.labels for s in dataset]), shapes, attrs)
    except OSError:
        if not path.exists():  # lost a creation race: the other process's store is fine
            raise


def _stems_donor(path: Path, dataset: Dataset) -> Path | None:
    """Another store in ``path``'s folder with the same ``stems_hash`` (:data:`HASHES`: the same
    songs, separator and clips; other spectrograms), or None."""
    key = zarr.open_group(str(path), mode="r").attrs.get("stems_hash")
    if key is None:                       # a store made before stems_hash: no donor is known safe
        return None
    ids = [s.song_id for s in dataset]
    for other in sorted(path.parent.glob("*.zarr")):
        if other == path or other.name.startswith("."):
            continue
        try:
            donor = zarr.open_group(str(other), mode="r")
            if donor.attrs.get("stems_hash") == key and list(donor["ids"][:]) == ids:
                return other
        except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError):  # not a usable store
            continue
    return None


def _reuse_stems(root, path: Path, todo: list[int], songs: list, config: PreprocessConfig,
                 bar) -> list[int]:
    """Songs of ``todo`` that the store at ``path`` holds, made from the same audio
    (``sources``): their stems and openSMILE functionals copied, their clips decoded again for
    the mixed spectrogram, the spectrograms computed here. Returns the songs still to do."""
    donor = zarr.open_group(str(path), mode="r")
    status, sources = donor["status"][:], donor["sources"][:]
    decoder = _Worker(config, "", songs, separate=False)
    rest, reused = [], 0
    for index in todo:
        if status[index] != store_lib.DONE:
            rest.append(index)
            continue
        index, source, clip, error = decoder.decode(index)
        if error is not None or source != sources[index]:
            rest.append(index)
            continue
        stems = donor["sep/stems"][index]
        smile = np.concatenate([donor["mixed/opensmile"][index][None],
                                donor["sep/opensmile"][index].reshape(len(stems), -1)])
        mono = audio_io.to_mono(clip)
        _consume(root, [(index, source, song_features(stems, spectrograms(mono, stems, config),
                                                      smile), None)], bar)
        reused += 1
    if reused:
        bar.write(f"reused the stems and openSMILE features of {reused} songs from "
                  f"{path.name}")
    return rest


def _pipelined(root, todo: list[int], songs: list, config: PreprocessConfig, cache_dir: str,
               workers: int, batch: int, bar) -> None:
    """The separator (U-Net and split, one program) and the spectrograms in this process, on the
    accelerator, ``batch`` songs per call; ``workers`` CPU-only processes decode the clips ahead
    of it and compute the openSMILE functionals behind it; songs are written as they finish.
    Memory stays bounded: at most ``2 * (batch + workers)`` clips are decoded ahead, and about as
    many separated songs wait for their functionals."""
    separator = Spleeter4Separator(cache_dir)
    window = 2 * batch + 2 * workers
    pending_decodes, pending_songs, ready = collections.deque(), collections.deque(), []
    context = multiprocessing.get_context("spawn")
    with runtime.cpu_only_children(), context.Pool(
            workers, initializer=_init_worker, initargs=(config, cache_dir, songs, False)) as pool:
        queue = iter(todo)
        while True:
            while len(pending_decodes) < window and (index := next(queue, None)) is not None:
                pending_decodes.append(pool.apply_async(_run_decode, (index,)))
            if pending_decodes:
                index, source, clip, error = pending_decodes.popleft().get()
                if error is None:
                    ready.append((index, source, clip))
                else:
                    _consume(root, [(index, source, None, error)], bar)
            if ready and (len(ready) == batch or not pending_decodes):
                all_stems = separator.separate_many([clip for _, _, clip in ready], batch)
                for (index, source, clip), stems in zip(ready, all_stems):
                    mono = audio_io.to_mono(clip)
                    pending_songs.append((index, source, stems, spectrograms(mono, stems, config),
                                          pool.apply_async(_run_opensmile, (mono, stems))))
                ready = []
            while pending_songs and (pending_songs[0][-1].ready() or len(pending_songs) > window
                                     or not pending_decodes):
                index, source, stems, spectra, smile = pending_songs.popleft()
                _consume(root, [(index, source, song_features(stems, spectra, smile.get()),
                                 None)], bar)
            if not (pending_decodes or ready or pending_songs):
                return


def _consume(root, results, bar) -> None:
    for index, source, features, error in results:
        if error is None:
            store_lib.write_song(root, index, source=source, **features)
        else:
            store_lib.mark_failed(root, index, error, source=source)
            bar.write(f"failed: {error}")
        bar.update()
