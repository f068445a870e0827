"""The paper's CRNN (Figure 1; the authors' Keras ``Simple_CRNN_3``) in Flax linen.

Input ``(batch, 129 frequency, T time, C)`` with C = 1 ("mixed") or 4 ("sep"); T = 2048 in the
paper. Five conv blocks, each: k x k conv (valid) + ReLU, 1 x 1 conv + ReLU, 2 x 2 max-pool,
dropout; k = 5, 5, 5, 5, 3 and channels (64, 32), (128, 64), (256, 128), (512, 256), (1024, 512).
The frequency axis reaches 1 and is squeezed, leaving ``(61 time, 512 channels)`` for T = 2048.
With ``lstm_over="channels"`` (the paper, default) that matrix is transposed so the LSTMs run
over the 512 channel positions with 61 features each - what the authors' Permute layer does, and
what gives their count of 5,966,116 parameters (C = 1); ``"time"`` runs them over the 61 time
steps (6,427,940). LSTMs 256 (sequence) -> 128 (sequence) -> 64 (last state), tanh; Dense 512,
256, 64 with ReLU; Dense 4: valence mean, arousal mean, valence std, arousal std (linear, as in
the paper, or a softplus on the two stds, shifted so that an output of 0 means a std of 0.15).
On CPU the convolutions and their gradients run in oneDNN (``mer_jax.kernels``), the same function
to float tolerance; elsewhere, and with ``MER_JAX_CONV=xla``, in XLA.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.kernels.conv import conv_general_dilated as conv

TYPICAL_STD = 0.15   # PMEmo's label stds average about 0.15 on the 0-1 scale
SOFTPLUS_SHIFT = float(np.log(np.expm1(TYPICAL_STD)))  # softplus(0 + shift) = TYPICAL_STD


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    conv_channels: tuple[tuple[int, int], ...] = ((64, 32), (128, 64), (256, 128), (512, 256),
                                                  (1024, 512))
    kernels: tuple[int, ...] = (5, 5, 5, 5, 3)
    lstm_units: tuple[int, ...] = (256, 128, 64)
    dense_units: tuple[int, ...] = (512, 256, 64)
    dropout: float = 0.1
    lstm_over: str = "channels"          # "channels" (paper) or "time"
    std_activation: str = "linear"       # "linear" (paper) or "softplus"

    def __post_init__(self):
        if self.lstm_over not in ("channels", "time"):
            raise ValueError(f"lstm_over must be 'channels' or 'time', not {self.lstm_over!r}")
        if self.std_activation not in ("linear", "softplus"):
            raise ValueError(f"std_activation must be 'linear' or 'softplus', "
                             f"not {self.std_activation!r}")
        if len(self.kernels) != len(self.conv_channels):
            raise ValueError("one kernel size per conv block")


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2 x 2 max-pool, stride 2, odd edges dropped (Keras MaxPooling2D, "valid"):
    ``(B, H, W, C)`` -> ``(B, H // 2, W // 2, C)``. Written as a reshape and a max, whose gradient
    is elementwise; ``nn.max_pool``'s select-and-scatter gradient is slow on XLA:CPU (the same
    values; on exact ties the gradient is shared instead of given to one element)."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class CRNN(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        """``(batch, freq, time, channels)`` -> ``(batch, 4)``."""
        cfg = self.config
        for (wide, narrow), k in zip(cfg.conv_channels, cfg.kernels):
            x = nn.relu(nn.Conv(wide, (k, k), padding="VALID", conv_general_dilated=conv)(x))
            x = nn.relu(nn.Conv(narrow, (1, 1), conv_general_dilated=conv)(x))
            x = max_pool_2x2(x)
            x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
        if x.shape[1] != 1:
            raise ValueError(f"the frequency axis ends at {x.shape[1]}, not 1: the input needs "
                             "129 frequency bins for this topology")
        x = x[:, 0]                                          # (batch, time, channels)
        if cfg.lstm_over == "channels":
            x = jnp.transpose(x, (0, 2, 1))                  # (batch, channels, time)
        for k, units in enumerate(cfg.lstm_units):
            cell = nn.OptimizedLSTMCell(units, name=f"lstm_{k}")
            carry = cell.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)  # zeros
            carry, x = nn.RNN(cell)(x, initial_carry=carry, return_carry=True)
        x = carry[1]                                         # the last LSTM's final hidden state
        for units in cfg.dense_units:
            x = nn.relu(nn.Dense(units)(x))
        out = nn.Dense(4)(x)
        if cfg.std_activation == "softplus":
            # shifted so that a fresh model (outputs near 0) predicts a typical label std
            stds = nn.softplus(out[:, 2:] + SOFTPLUS_SHIFT)
            out = jnp.concatenate([out[:, :2], stds], axis=-1)
        return out


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def init_params(config: ModelConfig, input_shape: tuple[int, int, int], rng: jax.Array):
    """Parameters for inputs ``(freq, time, channels)``."""
    dummy = jnp.zeros((1, *input_shape), jnp.float32)
    init = jax.jit(lambda key: CRNN(config).init(key, dummy, train=False)["params"])
    return init(rng)


def param_shapes(config: ModelConfig, input_shape: tuple[int, int, int]):
    """The parameter tree's shapes, without computing anything (for ``--dry-run``)."""
    return jax.eval_shape(lambda: init_params(config, input_shape, jax.random.PRNGKey(0)))
