"""The preprocessing config: everything that makes a song's stored features (and a model's
inputs at prediction), shared by the preprocessing driver and serving without importing either.
"""
from __future__ import annotations

import dataclasses
import warnings

from mer_jax import audio as audio_io
from mer_jax.features import opensmile_features
from mer_jax.features.spectrogram import SpectrogramConfig

PREPROCESS_VERSION = 4
# older versions whose features differ so little that a model trained on them may still predict
# (with a warning); their stores are never reused (the version is part of the store's hash)
COMPATIBLE_VERSIONS = {
    1: "its spectrograms' time resize used float32 sample positions (values differ by up to "
       "~0.05% of a clip's peak), and spleeter4 split the accompaniment as in version 2",
    2: "spleeter4 split the accompaniment into drums/bass/other with the first HPSS settings "
       "(a sep model trained on them now sees other stems: bass +2.4, drums +1.35, other "
       "+0.2 dB SDR on MUSDB previews); mixed features are unchanged",
    3: "spleeter4's percussive kernel was 7 bins at every frequency (drums and other now "
       "+0.4 / +0.2 dB SDR on MUSDB previews); mixed features are unchanged"}


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    separator: str = "spleeter4"
    sample_rate: int = audio_io.SAMPLE_RATE
    clip_seconds: float = audio_io.CLIP_SECONDS
    spectrogram: SpectrogramConfig = SpectrogramConfig()
    opensmile_feature_set: str = opensmile_features.FEATURE_SET

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @classmethod
    def for_clip(cls, separator: str, clip_seconds: float,
                 spectrogram: str = "stft") -> "PreprocessConfig":
        """A config whose spectrogram (``SpectrogramConfig.named``: "stft", the paper's, or "mel")
        has the frame count that fits ``clip_seconds`` (45 s: the paper's 15,502)."""
        samples = int(round(clip_seconds * audio_io.SAMPLE_RATE))
        frames = SpectrogramConfig.frames_for(samples)
        return cls(separator=separator, clip_seconds=clip_seconds,
                   spectrogram=SpectrogramConfig.named(spectrogram, frames))

    def to_dict(self) -> dict:
        return {"version": PREPROCESS_VERSION, **dataclasses.asdict(self),
                "spectrogram": self.spectrogram.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict` (a store's ``config`` attribute)."""
        values = dict(values)
        version = values.pop("version", None)
        if version in COMPATIBLE_VERSIONS:
            warnings.warn(f"preprocessing config version {version}: {COMPATIBLE_VERSIONS[version]}"
                          f"; this mer-jax makes version {PREPROCESS_VERSION}", stacklevel=2)
        elif version != PREPROCESS_VERSION:
            raise ValueError(f"preprocessing config version {version}, this mer-jax makes "
                             f"version {PREPROCESS_VERSION}: features would differ")
        return cls(**{**values, "spectrogram": SpectrogramConfig(**values["spectrogram"])})
