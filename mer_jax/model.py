"""The paper's CRNN (Figure 1; the authors' Keras ``Simple_CRNN_3``) in Flax linen.

Input ``(batch, 129 frequency, T time, C)`` with C = 1 ("mixed") or 4 ("sep"); T = 2048 in the
paper. Five conv blocks, each: k x k conv (valid) + ReLU, 1 x 1 conv + ReLU, 2 x 2 max-pool,
dropout; k = 5, 5, 5, 5, 3 and channels (64, 32), (128, 64), (256, 128), (512, 256), (1024, 512).
The frequency axis reaches 1 and is squeezed, leaving ``(61 time, 512 channels)`` for T = 2048.
With ``lstm_over="channels"`` (the paper, default) that matrix is transposed so the LSTMs run
over the 512 channel positions with 61 features each - what the authors' Permute layer does, and
what gives their count of 5,966,116 parameters (C = 1); ``"time"`` runs them over the 61 time
steps (6,427,940). LSTMs 256 (sequence) -> 128 (sequence) -> 64 (last state), tanh, run as
``mer_jax.lstm`` says (``summary="pool"``, beyond the paper, replaces them by each channel's mean
and maximum over time: any input length then works, :meth:`ModelConfig.time_left`); Dense 512,
256, 64 with ReLU; Dense 4: valence mean, arousal mean, valence std, arousal std (linear, as in
the paper, or a softplus on the two stds, shifted so that an output of 0 means a std of 0.15).
Each convolution and its ReLU is one ``ConvReLU`` (``nn.Conv``'s parameters, names and
initializers); on CPU it and its gradients run in oneDNN with the bias and ReLU fused
(``mer_jax.kernels``), the same function to float tolerance; elsewhere, and with
``MER_JAX_CONV=xla``, in XLA. Dropout masks come from ``mer_jax.dropout`` (flax's law, one fused
pass on CPU). ``compute_dtype="bfloat16"`` (beyond the paper, for accelerators) runs the convs,
LSTMs and hidden Dense layers in bfloat16 on float32 parameters; the output layer, the loss and
the optimizer stay float32.
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax import lstm
from mer_jax.dropout import Dropout
from mer_jax.kernels.conv import conv_bias_relu

TYPICAL_STD = 0.15   # PMEmo's label stds average about 0.15 on the 0-1 scale
SOFTPLUS_SHIFT = float(np.log(np.expm1(TYPICAL_STD)))  # softplus(0 + shift) = TYPICAL_STD
COMPUTE_DTYPES = ("float32", "bfloat16")
# initialisers of the conv and hidden Dense kernels: flax's default (LeCun normal, variance
# 1 / fan_in; the output layer too), or He normal (variance 2 / fan_in), which keeps the signal's
# scale through the 13 ReLU layers, with a zero output layer (a fresh model predicts exactly its
# output prior, or a typical std with the softplus head)
KERNEL_INITS = {"lecun": nn.initializers.lecun_normal, "he": nn.initializers.he_normal}
# the std floor of the fitted input standardisation, as 1% of a reference std over all bins and
# channels: "peak" (the largest std: a bin that varies 100x less than the liveliest one is scaled
# as a bin with 1% of its spread, so near-empty bins stay near zero) or "median" (the first rule,
# kept to reproduce earlier runs: when half the bins are nearly empty - MP3s low-passed by their
# encoder, a stem with nothing above its band - it blows their noise up to unit variance)
INPUT_FLOORS = ("peak", "median")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    conv_channels: tuple[tuple[int, int], ...] = ((64, 32), (128, 64), (256, 128), (512, 256),
                                                  (1024, 512))
    kernels: tuple[int, ...] = (5, 5, 5, 5, 3)
    lstm_units: tuple[int, ...] = (256, 128, 64)
    dense_units: tuple[int, ...] = (512, 256, 64)
    dropout: float = 0.1
    lstm_over: str = "channels"          # "channels" (paper) or "time"
    summary: str = "lstm"                # "lstm" (paper) or "pool": mean and max over time
    std_activation: str = "linear"       # "linear" (paper) or "softplus"
    input_norm: bool = False             # per-frequency standardisation (fitted, not trained)
    output_prior: bool = False           # outputs as offsets from a fitted prior (not trained)
    compute_dtype: str = "float32"       # or "bfloat16": activations (params and head stay f32)
    kernel_init: str = "lecun"           # "lecun" (flax's default) or "he" (KERNEL_INITS)
    spectral_skip: bool = False          # the head also sees each input bin's time mean and std
    input_floor: str = "peak"            # input_norm's std floor: 1% of the "peak" or "median" std
    input_clip: float = 0.0              # > 0: standardised inputs clipped to [-clip, clip]

    def __post_init__(self):
        if self.lstm_over not in ("channels", "time"):
            raise ValueError(f"lstm_over must be 'channels' or 'time', not {self.lstm_over!r}")
        if self.summary not in ("lstm", "pool"):
            raise ValueError(f"summary must be 'lstm' or 'pool', not {self.summary!r}")
        if self.std_activation not in ("linear", "softplus"):
            raise ValueError(f"std_activation must be 'linear' or 'softplus', "
                             f"not {self.std_activation!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, "
                             f"not {self.compute_dtype!r}")
        if self.kernel_init not in KERNEL_INITS:
            raise ValueError(f"kernel_init must be one of {tuple(KERNEL_INITS)}, "
                             f"not {self.kernel_init!r}")
        if self.input_floor not in INPUT_FLOORS:
            raise ValueError(f"input_floor must be one of {INPUT_FLOORS}, "
                             f"not {self.input_floor!r}")
        if not self.input_clip >= 0:
            raise ValueError(f"input_clip must be >= 0 (0: no clipping), not {self.input_clip}")
        if len(self.kernels) != len(self.conv_channels):
            raise ValueError("one kernel size per conv block")

    def time_left(self, time_bins: int) -> int:
        """Time bins left after the conv blocks for an input of ``time_bins`` (0: too short)."""
        for k in self.kernels:
            time_bins = max(0, time_bins - k + 1) // 2
        return time_bins


def _corners(x: jnp.ndarray) -> list[jnp.ndarray]:
    """The four corners of each 2 x 2 window: ``(B, H, W, C)`` -> 4 x ``(B, H // 2, W // 2, C)``
    (strided slices, odd edges dropped)."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return [x[:, p:h:2, q:w:2] for p in (0, 1) for q in (0, 1)]


def _upsample_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """``(B, H, W, C)`` -> ``(B, 2 H, 2 W, C)``, each value repeated over its window."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


@jax.custom_vjp
def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2 x 2 max-pool, stride 2, odd edges dropped (Keras MaxPooling2D, "valid"):
    ``(B, H, W, C)`` -> ``(B, H // 2, W // 2, C)``. The maximum of the windows' four corners, one
    elementwise pass. Its gradient is jax's for a max over each window (shared equally between
    tied maxima), recomputed from the input and output instead of kept masks; ``nn.max_pool``'s
    select-and-scatter gradient is slow on XLA:CPU (the same values except on exact ties, where
    that one gives it all to one element). Reverse-mode only (a ``jax.custom_vjp``)."""
    return functools.reduce(jnp.maximum, _corners(x))


def _max_pool_fwd(x):
    pooled = max_pool_2x2(x)
    return pooled, (x, pooled)


def _max_pool_bwd(residuals, dy):
    x, pooled = residuals
    ties = sum((corner == pooled).astype(dy.dtype) for corner in _corners(x))
    b, h, w, c = x.shape
    window = x[:, : h // 2 * 2, : w // 2 * 2]
    g = jnp.where(window == _upsample_2x2(pooled), _upsample_2x2(dy / ties), 0.0)
    return (jnp.pad(g, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


class ConvReLU(nn.Module):
    """``relu(conv(x) + bias)``, "VALID", stride 1: ``(B, H, W, C)`` -> ``(B, H - k + 1, W - k + 1,
    features)``. The parameters of ``nn.Conv(features, (k, k))`` (``kernel (k, k, C, features)``
    then ``bias (features,)``, same initializers), so a ``ConvReLU`` named ``Conv_i`` has the
    parameters, and the initial values, that ``nn.Conv`` named ``Conv_i`` has."""
    features: int
    kernel_size: int
    kernel_init: str = "lecun"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INITS[self.kernel_init](),
                            (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return conv_bias_relu(x, kernel.astype(x.dtype), bias.astype(x.dtype))


class InputNorm(nn.Module):
    """``(x - mean) * scale`` per frequency bin and channel, clipped to ``[-clip, clip]`` when
    ``clip > 0``: ``(B, F, T, C)`` -> same shape.

    ``mean`` and ``scale`` (``(F, 1, C)``, initially 0 and 1) are parameters so that they travel
    with the model (checkpoints, exports, vmapped stacks), but they are *fitted*, not trained: the
    training loop sets them from the training songs of the model's own split
    (:func:`set_input_norm`) and no gradient reaches them (``stop_gradient``; Adam's update of a
    zero gradient is zero)."""

    clip: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        shape = (x.shape[1], 1, x.shape[3])
        mean = self.param("mean", nn.initializers.zeros_init(), shape, jnp.float32)
        scale = self.param("scale", nn.initializers.ones_init(), shape, jnp.float32)
        x = (x - jax.lax.stop_gradient(mean)) * jax.lax.stop_gradient(scale)
        return jnp.clip(x, -self.clip, self.clip) if self.clip > 0 else x


def set_input_norm(params: dict, mean: np.ndarray, std: np.ndarray,
                   floor: str = "peak") -> dict:
    """``params`` with ``InputNorm_0`` fitted: ``mean`` and ``std`` ``(F, C)`` of the training
    inputs over songs and time, stds floored at 1% of their ``floor`` (``INPUT_FLOORS``: the
    largest or the median std), so that a near-constant bin is not blown up."""
    std = np.asarray(std, np.float64)
    if floor not in INPUT_FLOORS:
        raise ValueError(f"floor must be one of {INPUT_FLOORS}, not {floor!r}")
    reference = np.median(std) if floor == "median" else np.max(std)
    scale = 1.0 / np.maximum(std, 0.01 * reference + 1e-12)
    norm = {"mean": jnp.asarray(np.asarray(mean)[:, None, :], jnp.float32),
            "scale": jnp.asarray(scale[:, None, :], jnp.float32)}
    return {**params, "InputNorm_0": norm}


class OutputPrior(nn.Module):
    """The prediction of a model that knows nothing about the song, ``(4,)``: (valence mean,
    arousal mean, valence std, arousal std). Fitted (:func:`set_output_prior`), not trained: the
    head's outputs are offsets from it, so a fresh model starts at the calibrated constant of its
    training songs instead of spending its first hundreds of steps moving output biases."""

    @nn.compact
    def __call__(self) -> jnp.ndarray:
        init = lambda key, shape, dtype: jnp.array([0.0, 0.0, TYPICAL_STD, TYPICAL_STD], dtype)
        return jax.lax.stop_gradient(self.param("value", init, (4,), jnp.float32))


def _inverse_softplus(y: jnp.ndarray) -> jnp.ndarray:
    return jnp.log(jnp.expm1(y))


def set_output_prior(params: dict, prior: np.ndarray) -> dict:
    """``params`` with ``OutputPrior_0`` set to ``prior`` ``(4,)`` (e.g. the calibrated constant
    of the training labels, :func:`mer_jax.baselines.calibrated`)."""
    return {**params, "OutputPrior_0": {"value": jnp.asarray(prior, jnp.float32)}}


class CRNN(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        """``(batch, freq, time, channels)`` -> ``(batch, 4)``."""
        cfg = self.config
        dtype = jnp.dtype(cfg.compute_dtype)
        if cfg.input_norm:
            x = InputNorm(cfg.input_clip)(x)
        x = x.astype(dtype)
        spectral = (jnp.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1).reshape(
            x.shape[0], -1) if cfg.spectral_skip else None)  # (batch, 2 freq C)
        for block, ((wide, narrow), k) in enumerate(zip(cfg.conv_channels, cfg.kernels)):
            if x.shape[2] < k + 1:
                raise ValueError(f"the input's time axis is too short for the conv blocks: "
                                 f"block {block + 1} gets {x.shape[2]} time bins, needs "
                                 f">= {k + 1}")
            # named as nn.Conv layers would be: checkpoints of either model load into the other
            x = ConvReLU(wide, k, cfg.kernel_init, name=f"Conv_{2 * block}")(x)
            x = ConvReLU(narrow, 1, cfg.kernel_init, name=f"Conv_{2 * block + 1}")(x)
            x = max_pool_2x2(x)
            x = Dropout(cfg.dropout, deterministic=not train)(x)
        if x.shape[1] != 1:
            raise ValueError(f"the frequency axis ends at {x.shape[1]}, not 1: the input needs "
                             "129 frequency bins for this topology")
        x = x[:, 0]                                          # (batch, time, channels)
        if cfg.summary == "pool":
            x = jnp.concatenate([x.mean(axis=1), x.max(axis=1)], axis=-1)  # (batch, 2 channels)
        else:
            x = _lstms(x, cfg)
        if spectral is not None:
            x = jnp.concatenate([x, spectral], axis=-1)
        init = KERNEL_INITS[cfg.kernel_init]()
        for units in cfg.dense_units:
            x = nn.relu(nn.Dense(units, dtype=dtype, kernel_init=init)(x))
        out = nn.Dense(4, kernel_init=(nn.initializers.zeros_init() if cfg.kernel_init == "he"
                                       else nn.initializers.lecun_normal()))(
            x.astype(jnp.float32))                          # the head in float32
        if cfg.output_prior:
            prior = OutputPrior()()
            means, stds = out[:, :2] + prior[:2], out[:, 2:]
            if cfg.std_activation == "softplus":
                stds = nn.softplus(stds + _inverse_softplus(prior[2:]))
            else:
                stds = stds + prior[2:]
            return jnp.concatenate([means, stds], axis=-1)
        if cfg.std_activation == "softplus":
            # shifted so that a fresh model (outputs near 0) predicts a typical label std
            stds = nn.softplus(out[:, 2:] + SOFTPLUS_SHIFT)
            out = jnp.concatenate([out[:, :2], stds], axis=-1)
        return out


def _lstms(x: jnp.ndarray, cfg: ModelConfig) -> jnp.ndarray:
    """``(batch, time, channels)`` -> the last LSTM's final hidden state ``(batch, units)``
    (``mer_jax.lstm``: the parameters of flax's ``OptimizedLSTMCell``, run as ``MER_JAX_LSTM``
    says), in ``x``'s dtype."""
    if cfg.lstm_over == "channels":
        x = jnp.transpose(x, (0, 2, 1))                      # (batch, channels, time)
    return lstm.stack(x, lstm.stack_weights(cfg.lstm_units, x.shape[-1]))


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def init_params(config: ModelConfig, input_shape: tuple[int, int, int], rng: jax.Array):
    """Parameters for inputs ``(freq, time, channels)`` (compiled once per config and shape)."""
    return _init_fn(config, tuple(input_shape))(rng)


@functools.lru_cache(maxsize=16)
def _init_fn(config: ModelConfig, input_shape: tuple[int, int, int]):
    dummy = np.zeros((1, *input_shape), np.float32)   # not a tracer: cached across traces
    return jax.jit(lambda key: CRNN(config).init(key, dummy, train=False)["params"])


def param_shapes(config: ModelConfig, input_shape: tuple[int, int, int]):
    """The parameter tree's shapes, without computing anything (for ``--dry-run``)."""
    return jax.eval_shape(lambda: init_params(config, input_shape, jax.random.PRNGKey(0)))


def predict(params: dict, x: jnp.ndarray, *, model_config: ModelConfig) -> jnp.ndarray:
    """``(B, freq, time, C)`` -> ``(B, 4)`` (valence mean, arousal mean, valence std, arousal
    std), without dropout: what training's evaluation and serving both apply."""
    return CRNN(model_config).apply({"params": params}, x, train=False)
