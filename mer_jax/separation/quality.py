"""Separation quality: BSS-eval v4 SDR, as in SiSEC 2018 / museval (images mode).

In BSS-eval v4's image mode (museval's default, used for the MUSDB18 leaderboards) the estimate
is decomposed as s_true + e_spat + e_interf + e_artif, and SDR = 10 log10(||s_true||^2 /
||e_spat + e_interf + e_artif||^2). The three error terms add up to (estimate - s_true), so the
SDR of each window is exactly 10 log10(||s||^2 / ||s_hat - s||^2); the 512-tap distortion
filters only split the error into ISR/SIR/SAR, which are not computed here. Windows are 1 s with
a 1 s hop (museval.evaluate's defaults); a window where any reference or any estimate is
entirely silent gets NaN, as in museval. A track's score is the median over its windows, a
dataset's the median over tracks.
"""
from __future__ import annotations

import numpy as np


def framewise_sdr(references: np.ndarray, estimates: np.ndarray, window: int = 44_100,
                  hop: int = 44_100) -> np.ndarray:
    """SDR per source and window: ``(sources, n[, channels])`` x2 -> ``(sources, windows)``."""
    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    if references.ndim == 2:
        references, estimates = references[..., None], estimates[..., None]
    n = references.shape[1]
    if estimates.shape[1] < n:  # museval pads a short estimate with zeros, cuts a long one
        estimates = np.pad(estimates, ((0, 0), (0, n - estimates.shape[1]), (0, 0)))
    estimates = estimates[:, :n]
    windows = int(np.floor((n - window + hop) / hop))
    out = np.full((references.shape[0], max(windows, 0)), np.nan)
    for t in range(windows):
        ref = references[:, t * hop: t * hop + window]
        est = estimates[:, t * hop: t * hop + window]
        if _any_silent(ref) or _any_silent(est):
            continue
        signal = np.sum(ref ** 2, axis=(1, 2))
        error = np.sum((est - ref) ** 2, axis=(1, 2))
        with np.errstate(divide="ignore"):
            out[:, t] = np.where(error > 0, 10 * np.log10(signal / np.maximum(error, 1e-300)),
                                 np.inf)
    return out


def _any_silent(sources: np.ndarray) -> bool:
    return bool(np.any(np.all(sources.sum(axis=2) == 0, axis=1)))


def track_sdr(references: np.ndarray, estimates: np.ndarray, **kwargs) -> np.ndarray:
    """Median SDR over windows, per source: ``(sources,)``."""
    return np.nanmedian(framewise_sdr(references, estimates, **kwargs), axis=1)
