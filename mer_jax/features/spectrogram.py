"""The CRNN's input: |STFT| (the paper's) or mel bands, resized along time, computed once in jitted
JAX.

"stft" (the paper): |STFT| as ``tf.signal.stft(frame_length=255, frame_step=128)`` (periodic Hann
window of 255 samples, frames zero-padded to the FFT length 256, no centring) -> 129 bins of
172 Hz at 44.1 kHz. The frame axis is zero-padded or cut to ``n_frames`` (the paper: 15,502 for
its 45 s clips), then resized to ``time_bins`` (2,048) with bilinear interpolation without
antialiasing - what the authors' Keras ``Resizing`` layer did at every step, done here once.

"mel" (beyond the paper): the same frame grid (hop 128; each frame centred where the paper's
255-sample frame is, the signal zero-padded at both ends), a 4,096-sample window (10.8 Hz bins)
and its |STFT| averaged into 129 triangular mel bands from 30 Hz to 11,025 Hz
(``dsp.mel_filterbank``): 39 bands below 1 kHz, where the paper's spectrogram has 6 bins; 17-24
Hz apart below 440 Hz and less than a semitone apart above it, so that melody, harmony and mode
are resolved above the bass. Same ``(bins, time_bins)`` shape; 4Q's clips hold almost nothing
above 11 kHz (MP3s low-passed by their encoder).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from mer_jax.features.dsp import frame_index, mel_filterbank, periodic_hann, resize_last_axis

PAPER_FRAMES = 15_502
PAPER_FRAME_LENGTH = 255
KINDS = ("stft", "mel")
MEL = {"frame_length": 4096, "fft_length": 4096, "mel_bands": 129, "fmin": 30.0,
       "fmax": 11_025.0}


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """frame_length / fft_length / hop in samples; mel_bands 0: the |STFT| bins themselves (the
    paper), else that many mel bands from fmin to fmax Hz. ``named(kind)`` makes the two kinds."""
    frame_length: int = PAPER_FRAME_LENGTH
    fft_length: int = 256
    hop: int = 128
    n_frames: int = PAPER_FRAMES
    time_bins: int = 2048
    mel_bands: int = 0
    fmin: float = 0.0
    fmax: float = 0.0

    def __post_init__(self):
        if self.frame_length < PAPER_FRAME_LENGTH or self.fft_length < self.frame_length:
            raise ValueError(f"frame_length must be >= {PAPER_FRAME_LENGTH} (frames are centred "
                             f"on the paper's grid) and <= fft_length, not {self.frame_length} "
                             f"/ {self.fft_length}")
        if not self.mel_bands and (self.fmin or self.fmax):
            raise ValueError("fmin / fmax are for mel bands (mel_bands > 0)")

    @property
    def kind(self) -> str:
        """"stft" or "mel"."""
        return "mel" if self.mel_bands else "stft"

    @property
    def bins(self) -> int:
        return self.mel_bands or self.fft_length // 2 + 1

    @classmethod
    def named(cls, kind: str, n_frames: int = PAPER_FRAMES) -> "SpectrogramConfig":
        """The spectrogram of ``kind`` ("stft": the paper's; "mel") for ``n_frames`` frames."""
        if kind not in KINDS:
            raise ValueError(f"spectrogram must be one of {KINDS}, not {kind!r}")
        return cls(n_frames=n_frames, **(MEL if kind == "mel" else {}))

    def to_dict(self) -> dict:
        """The fields; the mel ones only for mel bands (so the paper's spectrogram keeps the
        identity, and its stores the paths, they had before mel bands existed)."""
        values = dataclasses.asdict(self)
        if not self.mel_bands:
            for name in ("mel_bands", "fmin", "fmax"):
                del values[name]
        return values

    @staticmethod
    def frames_for(samples: int, frame_length: int = PAPER_FRAME_LENGTH, hop: int = 128) -> int:
        """Frames that tf.signal.stft gives for ``samples`` (no padding)."""
        return 1 + (samples - frame_length) // hop


@functools.partial(jax.jit, static_argnames=("config", "sample_rate"))
def spectrogram(waves: jnp.ndarray, config: SpectrogramConfig = SpectrogramConfig(),
                sample_rate: int | None = None) -> jnp.ndarray:
    """``(channels, samples)`` float32 -> ``(channels, config.bins, config.time_bins)`` float32;
    mel bands need the waves' ``sample_rate``."""
    frames = max(0, SpectrogramConfig.frames_for(waves.shape[-1], hop=config.hop))
    extra = config.frame_length - PAPER_FRAME_LENGTH
    if extra:                       # centre the longer frames on the paper's frames
        waves = jnp.pad(waves, ((0, 0), (extra // 2, extra - extra // 2)))
    idx = frame_index(frames, config.frame_length, config.hop)
    window = periodic_hann(config.frame_length)
    if config.mel_bands:
        if sample_rate is None:
            raise ValueError("mel bands need the sample rate")
        bank = jnp.asarray(mel_filterbank(config.mel_bands, config.fft_length, sample_rate,
                                          config.fmin, config.fmax).T)
    else:
        bank = None

    def magnitudes(w):                                                  # -> (..., frames, bins)
        magnitude = jnp.abs(jnp.fft.rfft(w[..., idx] * window, n=config.fft_length, axis=-1))
        return magnitude if bank is None else magnitude @ bank

    # (C, frames, bins); mel frames are 16x longer: one channel at a time bounds the memory
    magnitude = magnitudes(waves) if bank is None else jax.lax.map(magnitudes, waves)
    keep = min(frames, config.n_frames)
    magnitude = jnp.pad(magnitude[:, :keep], ((0, 0), (0, config.n_frames - keep), (0, 0)))
    by_time = jnp.transpose(magnitude, (0, 2, 1))                       # (C, bins, n_frames)
    return resize_last_axis(by_time, config.time_bins).astype(jnp.float32)
