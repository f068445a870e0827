"""From stored spectrograms to the CRNN's input: the one definition training and serving share.

``MODES``: "mixed" (one channel, the mixture's spectrogram) or "sep" (one channel per stem, in
``STEM_ORDER``).
"""
from __future__ import annotations

import numpy as np

from mer_jax.data.songs import STEM_ORDER
from mer_jax.features.dsp import mean_pool_last_axis, resize_last_axis

MODES = ("mixed", "sep")
TIME_POOLS = ("resize", "mean")   # the paper's bilinear resize, or block averages


def input_channels(mode: str) -> int:
    """Channels of a ``mode`` model's input: 1 (mixed) or 4 (sep)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return 1 if mode == "mixed" else len(STEM_ORDER)


def model_input(spectra: np.ndarray, time_bins: int, log_input: bool,
                time_pool: str = "resize") -> np.ndarray:
    """Stored spectrograms ``(C, freq, stored_time)`` -> one model input ``(freq, time_bins, C)``
    float32. When the widths differ, time is resized bilinearly (``time_pool="resize"``, the
    paper: each output bin samples the two nearest stored frames) or averaged over equal blocks
    of stored frames (``"mean"``: antialiased, every frame counts); then log1p if asked."""
    if time_pool not in TIME_POOLS:
        raise ValueError(f"time_pool must be one of {TIME_POOLS}, not {time_pool!r}")
    x = spectra
    if x.shape[-1] != time_bins:
        x = (resize_last_axis(x, time_bins) if time_pool == "resize"
             else mean_pool_last_axis(x, time_bins))
    if log_input:
        x = np.log1p(x)
    return np.ascontiguousarray(np.transpose(x, (1, 2, 0)), dtype=np.float32)
