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


def hz_to_mel(hz):
    """The HTK mel scale, ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(bands: int, fft_length: int, sample_rate: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """``(bands, fft_length // 2 + 1)`` float32 triangular filters with centres equally spaced on
    the HTK mel scale from ``fmin`` to ``fmax`` Hz, each normalised to sum to 1 (a band is a
    weighted mean of the |STFT| bins under it, on the bins' own scale). A band narrower than the
    bin spacing takes its nearest bin, so that no band is empty."""
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"mel bands need 0 <= fmin < fmax <= {sample_rate / 2} Hz "
                         f"(the Nyquist frequency), not {fmin}..{fmax}")
    freqs = np.arange(fft_length // 2 + 1) * sample_rate / fft_length
    edges = 700.0 * (10 ** (np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2) / 2595)
                     - 1.0)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((freqs - lo) / (centre - lo),
                                         (hi - freqs) / (hi - centre)))
    empty = weights.sum(axis=1) == 0
    weights[empty, np.abs(freqs[None] - centre[empty]).argmin(axis=1)] = 1.0
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
