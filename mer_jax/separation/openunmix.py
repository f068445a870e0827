"""Open-Unmix (Stöter, Uhlich, Liutkus & Mitsufuji, JOSS 2019) in JAX: ``umxhq`` and ``umxl``.

The forward pass of the ``openunmix`` PyTorch package (1.3.0), for a stereo waveform ``(2, n)``
at 44.1 kHz:
  STFT (n_fft 4096, hop 1024, periodic Hann, centred with reflect padding) -> magnitudes
  ``(frames, 2, 2049)`` -> per target one OpenUnmix network: crop to the first ``max_bin`` bins
  (1487, 16 kHz), (x + input_mean) * input_scale, fc1 -> batch norm -> tanh, a 3-layer
  bidirectional LSTM with a skip connection, fc2 -> batch norm -> ReLU, fc3 -> batch norm,
  * output_scale + output_mean, ReLU, times the mixture magnitude -> the multichannel Wiener
  post-filter (``openunmix.filtering.wiener``: mixture phase, then ``niter`` EM steps, on blocks
  of 300 frames) -> inverse STFT -> ``(4 targets, 2, n)``.

Weights are the official PyTorch state dicts, read by ``mer_jax.separation.torch_state`` (no
torch, no code from the file); hidden size and bin counts come from their shapes, so the same
code serves UMX-HQ (hidden 512) and UMX-L (hidden 1024). See ``openunmix_weights`` for the files.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.separation.spleeter import istft, stft

TARGETS = ("vocals", "drums", "bass", "other")   # Open-Unmix's order of targets
BN_EPS = 1e-5
WIENER_EPS = 1e-10
WIENER_SCALE = 10.0
WIENER_FRAMES = 300       # frames per independently filtered block (openunmix's default)


def _batch_norm(x, p, name):
    scale = p[f"{name}.weight"] / jnp.sqrt(p[f"{name}.running_var"] + BN_EPS)
    return (x - p[f"{name}.running_mean"]) * scale + p[f"{name}.bias"]


def _lstm(x, p, suffix, reverse: bool):
    """One LSTM direction, PyTorch's gate order (i, f, g, o): ``(T, I)`` -> ``(T, H)``."""
    w_hh = p[f"lstm.weight_hh_{suffix}"]
    bias = p[f"lstm.bias_ih_{suffix}"] + p[f"lstm.bias_hh_{suffix}"]
    xw = x @ p[f"lstm.weight_ih_{suffix}"].T + bias
    hidden = w_hh.shape[1]

    def step(carry, xt):
        h, c = carry
        i, f, g, o = jnp.split(xt + h @ w_hh.T, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros(hidden, x.dtype)
    return jax.lax.scan(step, (zeros, zeros), xw, reverse=reverse)[1]


def lstm_layers(p: dict) -> int:
    return sum(1 for k in p if k.startswith("lstm.weight_ih_l") and not k.endswith("_reverse"))


def unmix(p: dict, magnitude: jnp.ndarray) -> jnp.ndarray:
    """One target's magnitude estimate: mixture magnitude ``(T, C, bins)`` -> same shape."""
    frames, channels, _ = magnitude.shape
    max_bin = p["input_mean"].shape[0]
    x = (magnitude[..., :max_bin] + p["input_mean"]) * p["input_scale"]
    x = jnp.tanh(_batch_norm(x.reshape(frames, channels * max_bin) @ p["fc1.weight"].T, p, "bn1"))
    h = x
    for layer in range(lstm_layers(p)):
        h = jnp.concatenate([_lstm(h, p, f"l{layer}", False),
                             _lstm(h, p, f"l{layer}_reverse", True)], axis=-1)
    x = jnp.concatenate([x, h], axis=-1) @ p["fc2.weight"].T
    x = jax.nn.relu(_batch_norm(x, p, "bn2")) @ p["fc3.weight"].T
    x = _batch_norm(x, p, "bn3").reshape(frames, channels, -1)
    return jax.nn.relu(x * p["output_scale"] + p["output_mean"]) * magnitude


def _em_step(y, x, eps=WIENER_EPS):
    """One EM step of ``openunmix.filtering.expectation_maximization`` for stereo.

    y: source STFTs ``(T, F, C, J)`` complex; x: mixture STFT ``(T, F, C)`` -> new y."""
    v = jnp.mean(jnp.abs(y) ** 2, axis=2)                                   # (T, F, J)
    cov = jnp.einsum("tfcj,tfdj->fcdj", y, jnp.conj(y))                     # (F, C, C, J)
    r = cov / (eps + v.sum(axis=0))[:, None, None, :]
    cxx = jnp.sqrt(eps) * jnp.eye(2) + jnp.einsum("tfj,fcdj->tfcd", v, r)  # (T, F, C, C)
    det = cxx[..., 0, 0] * cxx[..., 1, 1] - cxx[..., 0, 1] * cxx[..., 1, 0]
    inv = jnp.stack([jnp.stack([cxx[..., 1, 1], -cxx[..., 0, 1]], -1),
                     jnp.stack([-cxx[..., 1, 0], cxx[..., 0, 0]], -1)], -2) / det[..., None, None]
    gain = jnp.einsum("fcej,tfed->tfcdj", r, inv) * v[:, :, None, None, :]
    return jnp.einsum("tfcdj,tfd->tfcj", gain, x)


def wiener(spectrograms, mix, niter: int):
    """``openunmix.filtering.wiener`` (softmask off, no residual) on one block of frames.

    spectrograms ``(T, F, C, J)`` magnitudes, mix ``(T, F, C)`` complex -> ``(T, F, C, J)``."""
    y = spectrograms * jnp.exp(1j * jnp.angle(mix))[..., None]
    if niter == 0:
        return y
    # openunmix's atan2 sets the real part of exactly-zero mixture bins to 1 in place, and the
    # EM steps see that altered mixture; reproduced for equal outputs on digital silence
    mix = jnp.where(mix == 0, jnp.ones_like(mix), mix)
    max_abs = jnp.maximum(1.0, jnp.max(jnp.abs(mix)) / WIENER_SCALE)
    y, mix = y / max_abs, mix / max_abs
    for _ in range(niter):
        y = _em_step(y, mix)
    return y * max_abs


@functools.partial(jax.jit, static_argnames=("niter", "block"))
def separate_stereo(params: dict, wave: jnp.ndarray, niter: int = 1,
                    block: int = WIENER_FRAMES) -> jnp.ndarray:
    """``(2, n)`` float32 -> ``(4 targets [TARGETS order], 2, n)``; ``params``: target ->
    state dict of jnp arrays."""
    spec = jnp.transpose(stft(wave, pad_mode="reflect"), (1, 2, 0))      # (T, F, C)
    magnitude = jnp.abs(spec).transpose(0, 2, 1)                          # (T, C, F)
    estimates = jnp.stack([unmix(params[t], magnitude) for t in TARGETS], axis=-1)
    estimates = estimates.transpose(0, 2, 1, 3)                          # (T, F, C, J)
    frames = spec.shape[0]
    padded = -(-frames // block) * block   # zero frames add nothing to a block's statistics
    pad = ((0, padded - frames), (0, 0), (0, 0))
    blocks = jax.vmap(functools.partial(wiener, niter=niter))(
        jnp.pad(estimates, pad + ((0, 0),)).reshape(padded // block, block, *estimates.shape[1:]),
        jnp.pad(spec, pad).reshape(padded // block, block, *spec.shape[1:]))
    targets = blocks.reshape(padded, *estimates.shape[1:])[:frames]       # (T, F, C, J)
    return jax.vmap(lambda s: istft(s, wave.shape[-1], trim_end=False))(
        targets.transpose(3, 2, 0, 1))


def to_arrays(state: dict[str, np.ndarray]) -> dict[str, jnp.ndarray]:
    """A state dict as float32 jnp arrays (BatchNorm's step counters dropped)."""
    return {k: jnp.asarray(v, jnp.float32) for k, v in state.items()
            if not k.endswith("num_batches_tracked")}
