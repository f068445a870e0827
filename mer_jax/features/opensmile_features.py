"""openSMILE ComParE_2016 functionals (6,373 per signal), as in the paper and PMEmo.

openSMILE reads only the first channel of a multichannel signal, so callers pass mono audio.
The "sep" vector concatenates the four stems' functionals in STEM_ORDER (4 x 6,373 = 25,492).
"""
from __future__ import annotations

import functools

import numpy as np

FEATURE_SET = "ComParE_2016"
N_FEATURES = 6373


@functools.lru_cache(maxsize=1)
def _smile():
    import opensmile
    return opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                           feature_level=opensmile.FeatureLevel.Functionals)


def feature_names() -> list[str]:
    return list(_smile().feature_names)


def functionals(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(samples,)`` mono -> ``(6373,)`` float32."""
    if signal.ndim != 1:
        raise ValueError(f"openSMILE needs mono audio, got shape {signal.shape}")
    frame = _smile().process_signal(np.asarray(signal, np.float32), sample_rate)
    values = frame.to_numpy(dtype=np.float32).reshape(-1)
    if values.size != N_FEATURES:
        raise RuntimeError(f"openSMILE returned {values.size} features, expected {N_FEATURES}")
    return values


def opensmile_version() -> str:
    import opensmile
    return opensmile.__version__
