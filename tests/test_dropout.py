"""mer_jax.dropout: jax's Threefry-2x32 written out, and a Dropout with flax's law."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32 as jax_threefry

from mer_jax.dropout import Dropout, random_bits, threefry_2x32


def test_threefry_is_jax_bit_for_bit():
    key = jnp.array([0xDEADBEEF, 12345], jnp.uint32)
    x0 = jnp.arange(1000, dtype=jnp.uint32) * np.uint32(2654435761)
    x1 = jnp.arange(1000, dtype=jnp.uint32)[::-1]
    ours = jnp.concatenate(threefry_2x32(key, x0, x1))
    np.testing.assert_array_equal(ours, jax_threefry(key, jnp.concatenate([x0, x1])))


def test_bits_are_deterministic_and_depend_on_the_key():
    key = jax.random.PRNGKey(7)
    a, b = random_bits(key, (4, 5, 6)), random_bits(key, (4, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == jnp.uint32 and a.shape == (4, 5, 6)
    assert float(jnp.mean(a == random_bits(jax.random.PRNGKey(8), (4, 5, 6)))) < 0.01
    typed = jax.random.key(7)                           # typed keys give the same bits
    np.testing.assert_array_equal(random_bits(typed, (4, 5, 6)), a)


def test_dropout_keeps_each_element_with_probability_one_minus_rate():
    x = jnp.ones((64, 50, 40))
    layer = Dropout(0.1, deterministic=False)
    y = layer.apply({}, x, rngs={"dropout": jax.random.PRNGKey(0)})
    kept = np.asarray(y != 0)
    assert abs(kept.mean() - 0.9) < 0.005               # 128,000 draws: 5 standard errors
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.9, rtol=1e-6)
    for axis in range(3):                               # no structure along any axis
        others = tuple(a for a in range(3) if a != axis)   # >= 2,560 draws per mean: sd < 0.006
        assert np.abs(kept.mean(axis=others) - 0.9).max() < 0.03
    again = layer.apply({}, x, rngs={"dropout": jax.random.PRNGKey(0)})
    np.testing.assert_array_equal(y, again)
    other = layer.apply({}, x, rngs={"dropout": jax.random.PRNGKey(1)})
    assert np.mean(np.asarray(other != 0) != kept) > 0.1
    np.testing.assert_array_equal(Dropout(0.1, deterministic=True).apply({}, x), x)
