"""Signal-processing pieces shared by the features and the separators: one definition of each.

Every function takes and returns NumPy arrays, or JAX arrays where it says so (the same
expression traces under jit), so the spectrogram (JAX), the Spleeter port (JAX) and the training
loader (NumPy) compute the same numbers.
"""
from __future__ import annotations

import numpy as np


def periodic_hann(length: int) -> np.ndarray:
    """``(length,)`` float32 periodic Hann window ``0.5 - 0.5 cos(2 pi n / length)`` (what
    ``tf.signal.stft`` and ``torch.stft`` use)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)


def frame_index(n_frames: int, frame_length: int, hop: int) -> np.ndarray:
    """``(n_frames, frame_length)`` sample indices of frames starting every ``hop`` samples:
    ``signal[..., frame_index(...)]`` is ``(..., n_frames, frame_length)``."""
    return np.arange(frame_length)[None, :] + hop * np.arange(n_frames)[:, None]


def resize_last_axis(x, size: int):
    """Bilinear resize of the last axis of a NumPy or JAX array to ``size``: half-pixel centres,
    no antialiasing, edges clamped - ``jax.image.resize(..., "bilinear", antialias=False)``
    along one axis (the authors' Keras ``Resizing`` layer)."""
    n = x.shape[-1]
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = (pos - np.floor(pos)).astype(np.float32)
    return x[..., lo] * (1 - frac) + x[..., hi] * frac


def mean_pool_last_axis(x, size: int):
    """Average the last axis of a NumPy or JAX array over ``size`` equal blocks (an antialiased
    downsampling: every input value counts); the length must be a multiple of ``size``."""
    n = x.shape[-1]
    if size <= 0 or n % size:
        raise ValueError(f"mean pooling needs a length that is a multiple of {size}, not {n}")
    return x.reshape(*x.shape[:-1], size, n // size).mean(axis=-1)
