"""From stored spectrograms to the CRNN's input: the one definition training and serving share.

``MODES``: "mixed" (one channel, the mixture's spectrogram) or "sep" (one channel per stem, in
``STEM_ORDER``).
"""
from __future__ import annotations

import numpy as np

from mer_jax.data.songs import STEM_ORDER
from mer_jax.features.dsp import resize_last_axis

MODES = ("mixed", "sep")


def input_channels(mode: str) -> int:
    """Channels of a ``mode`` model's input: 1 (mixed) or 4 (sep)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return 1 if mode == "mixed" else len(STEM_ORDER)


def model_input(spectra: np.ndarray, time_bins: int, log_input: bool) -> np.ndarray:
    """Stored spectrograms ``(C, freq, stored_time)`` -> one model input ``(freq, time_bins, C)``
    float32 (time resized bilinearly when the widths differ, log1p if asked)."""
    x = spectra
    if x.shape[-1] != time_bins:
        x = resize_last_axis(x, time_bins)
    if log_input:
        x = np.log1p(x)
    return np.ascontiguousarray(np.transpose(x, (1, 2, 0)), dtype=np.float32)
