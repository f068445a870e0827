"""The paper's CRNN input: |STFT| resized along time, computed once in jitted JAX.

|STFT| as ``tf.signal.stft(frame_length=255, frame_step=128)`` (periodic Hann window of 255
samples, frames zero-padded to the FFT length 256, no centring) -> 129 bins. The frame axis is
zero-padded or cut to ``n_frames`` (the paper: 15,502 for its 45 s clips), then resized to
``time_bins`` (2,048) with bilinear interpolation without antialiasing - what the authors' Keras
``Resizing`` layer did at every step, done here once.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from mer_jax.features.dsp import frame_index, periodic_hann, resize_last_axis

PAPER_FRAMES = 15_502


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    frame_length: int = 255
    fft_length: int = 256
    hop: int = 128
    n_frames: int = PAPER_FRAMES
    time_bins: int = 2048

    @property
    def bins(self) -> int:
        return self.fft_length // 2 + 1

    @staticmethod
    def frames_for(samples: int, frame_length: int = 255, hop: int = 128) -> int:
        """Frames that tf.signal.stft gives for ``samples`` (no padding)."""
        return 1 + (samples - frame_length) // hop


@functools.partial(jax.jit, static_argnames="config")
def spectrogram(waves: jnp.ndarray, config: SpectrogramConfig = SpectrogramConfig()) -> jnp.ndarray:
    """``(channels, samples)`` float32 -> ``(channels, bins=129, time_bins=2048)`` float32."""
    frames = max(0, SpectrogramConfig.frames_for(waves.shape[-1], config.frame_length, config.hop))
    idx = frame_index(frames, config.frame_length, config.hop)
    windowed = waves[:, idx] * periodic_hann(config.frame_length)        # (C, frames, 255)
    magnitude = jnp.abs(jnp.fft.rfft(windowed, n=config.fft_length, axis=-1))
    keep = min(frames, config.n_frames)
    magnitude = jnp.pad(magnitude[:, :keep], ((0, 0), (0, config.n_frames - keep), (0, 0)))
    by_time = jnp.transpose(magnitude, (0, 2, 1))                       # (C, bins, n_frames)
    return resize_last_axis(by_time, config.time_bins).astype(jnp.float32)
