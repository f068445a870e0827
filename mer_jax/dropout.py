"""Dropout whose random mask is one elementwise pass on every backend.

``flax.linen.Dropout`` draws its mask with ``jax.random.bernoulli``. On CPU, jax lowers the
Threefry-2x32 hash behind it as a rolled loop of five steps, each a pass over 32-bit arrays the
size of the activation, which made dropout about 0.2 s of the paper CRNN's 4.8 s train step on
the 2-core reference machine. ``Dropout`` here hashes each element's index with the same
Threefry-2x32 (20 rounds, written out, so that XLA fuses it with the select: 15 ms instead of
165 ms for the first block's mask there) and keeps an element when its 32-bit hash is below
``keep_prob * 2**32``. The mask has the same law as flax's (each
element kept independently with probability ``1 - rate``, to 2**-32), and the same key gives
the same mask; the draws differ from flax's.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(v: jnp.ndarray, bits: int) -> jnp.ndarray:
    return (v << np.uint32(bits)) | (v >> np.uint32(32 - bits))


def threefry_2x32(key: jnp.ndarray, x0: jnp.ndarray, x1: jnp.ndarray):
    """The Threefry-2x32 block cipher (20 rounds), unrolled: ``key`` uint32[2], ``x0`` and ``x1``
    uint32 arrays of one shape -> the two output words. Bit for bit what
    ``jax.extend.random.threefry_2x32`` computes (tests check it)."""
    ks = [key[0], key[1], key[0] ^ key[1] ^ _KEY_PARITY]
    x = [x0 + ks[0], x1 + ks[1]]
    for step in range(5):
        for rotation in _ROTATIONS[step % 2]:
            x[0] = x[0] + x[1]
            x[1] = x[0] ^ _rotate_left(x[1], rotation)
        x = [x[0] + ks[(step + 1) % 3], x[1] + ks[(step + 2) % 3] + np.uint32(step + 1)]
    return x[0], x[1]


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
    """uint32 array of ``shape``: the first Threefry-2x32 word of each element's counter
    ``(flat index, 0)`` under ``key`` (a typed key or a raw uint32 key; its first two words are
    used). One hash per element, no gathering: XLA fuses it into its consumer."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    key = key.reshape(-1)[:2].astype(jnp.uint32)
    index = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
    return threefry_2x32(key, index, jnp.zeros_like(index))[0]


class Dropout(nn.Module):
    """``nn.Dropout(rate)``'s interface for the CRNN (``deterministic``, rng stream "dropout"),
    with the mask from ``random_bits``: ``(...)`` -> ``(...)``, kept elements scaled by
    ``1 / (1 - rate)``."""
    rate: float
    deterministic: bool

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.deterministic or self.rate == 0.0:
            return x
        keep_prob = 1.0 - self.rate
        threshold = np.uint32(min(round(keep_prob * 2**32), 2**32 - 1))
        keep = random_bits(self.make_rng("dropout"), x.shape) < threshold
        return jnp.where(keep, x / keep_prob, 0.0)
