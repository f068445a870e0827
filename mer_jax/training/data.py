"""Model inputs from the feature store, and a prefetching batch iterator.

Batches are a pure function of (split, seed, step): step s of a model reads the songs at positions
[s B, (s + 1) B) of an endless stream made of one seeded permutation of the training songs per
pass. A resumed run therefore sees exactly the batches an uninterrupted one would. The random
streams are independent by construction: the splits (``mer_jax.training.splits``) draw from
``SeedSequence([split_seed, k])``, each model's batch order from ``SeedSequence([seed,
iteration], spawn_key=(BATCH_STREAM, pass))`` (a spawned child stream, never equal to a
split's). With random crops (``TrainConfig.crop_bins``) each song of step s starts at an offset
drawn from ``SeedSequence([seed, iteration], spawn_key=(CROP_STREAM, s))``.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import math
import queue
import threading
import time

import numpy as np

from mer_jax.features.model_input import MODES, model_input
from mer_jax.features.spectrogram import SpectrogramConfig
from mer_jax.store import FeatureStore, StoreError

BATCH_STREAM = 1   # spawn-key tag of the batch-order streams (the splits' streams have none)
CROP_STREAM = 2    # spawn-key tag of the random-crop streams
MIXUP_STREAM = 3   # spawn-key tag of the mixup streams


class ModelInputs:
    """Spectrograms of one mode as model inputs ``(freq, time, channels)`` float32.

    Each song is read from the store once (time axis resized to ``time_bins`` if smaller, log1p
    if asked) and kept in memory when the whole set fits in ``memory_limit_bytes``.
    """

    def __init__(self, store: FeatureStore, mode: str, time_bins: int, log_input: bool,
                 memory_limit_bytes: int = 4 << 30, time_pool: str = "resize",
                 spectrogram: str = "stft"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        stored = SpectrogramConfig(**store.attrs["config"]["spectrogram"]).kind
        if stored != spectrogram:
            raise StoreError(f"the config trains on {spectrogram!r} spectrograms, the store "
                             f"{store.path} holds {stored!r} ones: preprocess with "
                             f"--spectrogram {spectrogram}")
        self.array = store.array(f"{mode}/spectrogram")
        self.mode, self.time_bins, self.log_input = mode, time_bins, log_input
        self.time_pool = time_pool
        stored_bins = self.array.shape[-1]
        if time_bins > stored_bins:
            raise ValueError(f"config wants {time_bins} time bins, the store has {stored_bins}")
        if time_pool == "mean" and stored_bins % time_bins:
            raise ValueError(f"time_pool 'mean' needs time_bins dividing the store's "
                             f"{stored_bins}, not {time_bins}")
        channels = 1 if mode == "mixed" else self.array.shape[1]
        self.shape = (self.array.shape[-2], time_bins, channels)
        per_song = int(np.prod(self.shape)) * 4
        self._cache: dict[int, np.ndarray] | None = \
            {} if per_song * self.array.shape[0] <= memory_limit_bytes else None
        self._lock = threading.Lock()

    def _prepare(self, raw: np.ndarray) -> np.ndarray:
        return model_input(raw[None] if self.mode == "mixed" else raw, self.time_bins,
                           self.log_input, self.time_pool)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def preload(self, indices, block: int = 16, workers: int = 2) -> float:
        """Read ``indices`` into the memory cache (no-op when the set does not fit); seconds."""
        began = time.perf_counter()
        if self._cache is None:
            return 0.0
        todo = sorted({int(i) for i in indices} - set(self._cache))
        blocks = [np.array(todo[k:k + block]) for k in range(0, len(todo), block)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(self.get, blocks))
        return time.perf_counter() - began

    def moments(self, indices: np.ndarray, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(freq, channels)`` over the songs ``indices`` and time (streamed)."""
        total = np.zeros((self.shape[0], self.shape[2]))
        squares = np.zeros_like(total)
        for k in range(0, len(indices), block):
            x = self.get(np.asarray(indices[k:k + block])).astype(np.float64)
            total += x.sum(axis=(0, 2))
            squares += np.square(x).sum(axis=(0, 2))
        count = len(indices) * self.shape[1]
        mean = total / count
        return mean, np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))

    def get(self, indices: np.ndarray) -> np.ndarray:
        """``(n,)`` store indices -> ``(n, freq, time, channels)``."""
        out = np.empty((len(indices), *self.shape), np.float32)
        cache = self._cache or {}
        missing = np.unique([int(i) for i in indices if int(i) not in cache])  # sorted
        fetched = {}
        if missing.size:
            raw = self.array.get_orthogonal_selection((missing,))
            fetched = {int(i): self._prepare(raw[k]) for k, i in enumerate(missing)}
        for k, i in enumerate(indices):
            out[k] = fetched[int(i)] if int(i) in fetched else cache[int(i)]
        if self._cache is not None:
            with self._lock:
                self._cache.update(fetched)
        return out


def batch_positions(n_train: int, batch_size: int, step: int, seed: tuple[int, ...]) -> np.ndarray:
    """Positions into the training list for ``step`` (see the module docstring); ``seed``: the
    model's (seed, iteration)."""
    flat = np.arange(step * batch_size, (step + 1) * batch_size)
    passes = flat // n_train
    out = np.empty(batch_size, np.int64)
    for p in np.unique(passes):
        stream = np.random.SeedSequence(list(seed), spawn_key=(BATCH_STREAM, int(p)))
        order = np.random.default_rng(stream).permutation(n_train)
        out[passes == p] = order[flat[passes == p] % n_train]
    return out


def crop_offsets(n_time: int, crop: int, batch_size: int, step: int,
                 seed: tuple[int, ...]) -> np.ndarray:
    """``(batch_size,)`` start bins of the random crops of ``step`` for the model ``seed``
    (seed, iteration): uniform over [0, n_time - crop]."""
    stream = np.random.SeedSequence(list(seed), spawn_key=(CROP_STREAM, int(step)))
    return np.random.default_rng(stream).integers(0, n_time - crop + 1, batch_size)


def random_crops(x: np.ndarray, crop: int, step: int, seeds: list[tuple[int, ...]]) -> np.ndarray:
    """``(K, B, freq, time, C)`` -> ``(K, B, freq, crop, C)``: model k's songs cut at
    ``crop_offsets`` of its seed."""
    k_models, batch, _, n_time, _ = x.shape
    out = np.empty((*x.shape[:3], crop, x.shape[4]), x.dtype)
    for k in range(k_models):
        for b, start in enumerate(crop_offsets(n_time, crop, batch, step, seeds[k])):
            out[k, b] = x[k, b, :, start:start + crop]
    return out


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, step: int,
          seeds: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018) of model k's batch ``x (K, B, freq, time, C)``, ``y (K, B, 4)``:
    song b mixed with song perm(b) of the same batch, weight lam ~ Beta(alpha, alpha), both drawn
    from ``SeedSequence(seeds[k], spawn_key=(MIXUP_STREAM, step))``. Inputs mix linearly; the
    label is the two songs' Gaussian mixture moments: mean lam m1 + (1 - lam) m2, variance
    lam s1^2 + (1 - lam) s2^2 + lam (1 - lam) (m1 - m2)^2."""
    x_out, y_out = np.empty_like(x), np.empty_like(y)
    for k in range(x.shape[0]):
        rng = np.random.default_rng(np.random.SeedSequence(list(seeds[k]),
                                                           spawn_key=(MIXUP_STREAM, int(step))))
        perm = rng.permutation(x.shape[1])
        lam = rng.beta(alpha, alpha, x.shape[1]).astype(np.float32)
        shape = (-1,) + (1,) * (x.ndim - 2)
        x_out[k] = lam.reshape(shape) * x[k] + (1 - lam.reshape(shape)) * x[k, perm]
        (m1, s1), (m2, s2) = (y[k, :, :2], y[k, :, 2:]), (y[k, perm, :2], y[k, perm, 2:])
        w = lam[:, None]
        means = w * m1 + (1 - w) * m2
        variance = w * s1 ** 2 + (1 - w) * s2 ** 2 + w * (1 - w) * (m1 - m2) ** 2
        y_out[k] = np.concatenate([means, np.sqrt(variance)], axis=-1)
    return x_out, y_out


class TrainBatches:
    """Background threads that prepare the stacked batches of K models, steps [start, stop).

    ``prefetch`` steps are prepared ahead, concurrently (Zarr decompression and NumPy release the
    GIL), and handed over in order. Yields ``(x (K, B, freq, time, C), y (K, B, 4))`` numpy
    arrays (time = ``crop`` when set: random crops, :func:`random_crops`; then :func:`mixup`
    when ``mixup_alpha`` is set); ``wait_seconds`` adds up the time the consumer spent blocked on
    data.
    """

    def __init__(self, inputs: ModelInputs, labels: np.ndarray, train_indices: list[np.ndarray],
                 batch_size: int, seeds: list[tuple[int, ...]], start: int, stop: int,
                 prefetch: int = 3, crop: int | None = None, mixup_alpha: float | None = None):
        self.inputs, self.labels, self.crop = inputs, labels, crop
        self.mixup_alpha = mixup_alpha
        self.train_indices, self.batch_size, self.seeds = train_indices, batch_size, seeds
        self.start, self.stop = start, stop
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._ahead = max(1, prefetch)
        self._pool = concurrent.futures.ThreadPoolExecutor(self._ahead)
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        idx = [train[batch_positions(len(train), self.batch_size, step, seed)]
               for train, seed in zip(self.train_indices, self.seeds)]
        x = np.stack([self.inputs.get(i) for i in idx])
        y = np.stack([self.labels[i] for i in idx])
        if self.crop:
            x = random_crops(x, self.crop, step, self.seeds)
        if self.mixup_alpha:
            x, y = mixup(x, y, self.mixup_alpha, step, self.seeds)
        return x, y

    def _produce(self) -> None:
        try:
            pending = collections.deque()
            steps = iter(range(self.start, self.stop))
            for step in itertools.islice(steps, self._ahead):
                pending.append(self._pool.submit(self.batch, step))
            while pending:
                item = pending.popleft().result()
                following = next(steps, None)
                if following is not None:
                    pending.append(self._pool.submit(self.batch, following))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as err:  # surfaced in the consumer
            self._queue.put(err)

    def __iter__(self):
        for _ in range(self.start, self.stop):
            began = time.perf_counter()
            item = self._queue.get()
            self.wait_seconds += time.perf_counter() - began
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)


def padded_batches(indices: np.ndarray, batch_size: int, n_batches: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-shape evaluation batches: ``(nb, B)`` indices (padded with the first) and a mask;
    ``nb`` = ``n_batches`` (at least the batches the indices fill; the rest all padding), by
    default just those."""
    nb = max(1, math.ceil(len(indices) / batch_size), n_batches or 0)
    padded = np.full(nb * batch_size, indices[0], dtype=np.int64)
    padded[: len(indices)] = indices
    mask = np.zeros(nb * batch_size, np.float32)
    mask[: len(indices)] = 1
    return padded.reshape(nb, batch_size), mask.reshape(nb, batch_size)
