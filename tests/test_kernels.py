"""The oneDNN convolution kernels: built and used on CPU, and the same function as XLA's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax.kernels import conv
from mer_jax.model import CRNN, ModelConfig, init_params

SHAPES = [  # (N, H, W, C, K, O): the CRNN's kinds of convolution at small sizes
    (2, 20, 31, 1, 5, 8), (2, 9, 11, 4, 1, 6), (1, 7, 7, 16, 3, 5), (3, 12, 40, 8, 5, 16)]


def _with_xla(monkeypatch, fn, *args):
    monkeypatch.setenv("MER_JAX_CONV", "xla")
    try:
        return jax.jit(fn)(*args)
    finally:
        monkeypatch.delenv("MER_JAX_CONV")


def test_kernels_are_built_and_enabled_on_cpu():
    assert conv.status() == "onednn", conv.status()


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_gradients_match_xla(shape):
    n, h, w, c, k, o = shape
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((k, k, c, o)), jnp.float32)

    def objective(conv_fn):
        return lambda x, kernel: jnp.sum(jnp.sin(conv_fn(x, kernel)))

    np.testing.assert_allclose(jax.jit(conv.conv_valid)(x, kernel), conv._xla_conv(x, kernel),
                               rtol=1e-5, atol=1e-4)
    ours = jax.jit(jax.grad(objective(conv.conv_valid), argnums=(0, 1)))(x, kernel)
    reference = jax.grad(objective(conv._xla_conv), argnums=(0, 1))(x, kernel)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    hlo = jax.jit(jax.grad(objective(conv.conv_valid), argnums=(0, 1))).lower(x, kernel)
    assert "mer_conv_backward_weights" in hlo.as_text()


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_conv_bias_relu_matches_xla(shape):
    """relu(conv(x, w) + b) in one oneDNN call, and its gradients (dx, dw and db, the ReLU mask
    taken from the output), equal XLA's unfused expression."""
    n, h, w, c, k, o = shape
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((k, k, c, o)), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(o), jnp.float32)

    def objective(fn):
        return lambda *args: jnp.sum(jnp.sin(fn(*args)))

    fused = jax.jit(conv.conv_bias_relu)(x, kernel, bias)
    reference = conv._xla_conv_bias_relu(x, kernel, bias)
    np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-4)
    assert float(jnp.mean(reference == 0)) > 0.2          # the ReLU is exercised
    ours = jax.jit(jax.grad(objective(conv.conv_bias_relu), argnums=(0, 1, 2)))(x, kernel, bias)
    expected = jax.grad(objective(conv._xla_conv_bias_relu), argnums=(0, 1, 2))(x, kernel, bias)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    hlo = jax.jit(jax.grad(objective(conv.conv_bias_relu), argnums=(0, 1, 2))).lower(
        x, kernel, bias).as_text()
    assert "mer_conv_bias_relu_forward" in hlo and "mer_conv_backward_weights_bias" in hlo


def test_vmapped_models_match():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 2, 10, 12, 4)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 4, 5)), jnp.float32)
    got = jax.jit(jax.vmap(conv.conv_valid))(x, kernel)
    for m in range(3):
        np.testing.assert_allclose(got[m], conv._xla_conv(x[m], kernel[m]), rtol=1e-5, atol=1e-4)


def test_other_convolutions_fall_back_to_lax():
    x = jnp.ones((1, 8, 8, 2))
    kernel = jnp.ones((3, 3, 2, 4))
    strided = conv.conv_general_dilated(x, kernel, (2, 2), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert strided.shape == (1, 4, 4, 4)
    text = jax.jit(lambda x, k: conv.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))).lower(x, kernel).as_text()
    assert "mer_conv" not in text          # a padded 3x3 convolution stays in XLA


def test_crnn_is_the_same_function_with_either_backend(monkeypatch):
    """Same parameters, same outputs and gradients, oneDNN or XLA convolutions."""
    config = ModelConfig(conv_channels=((8, 4), (8, 4), (8, 8), (8, 8), (8, 8)),
                         lstm_units=(8, 8, 8), dense_units=(8, 8, 8))
    shape = (129, 128, 4)
    params = init_params(config, shape, jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, *shape), maxval=5.0)

    def loss(params, x):
        return jnp.sum(CRNN(config).apply({"params": params}, x, train=False) ** 2)

    ours = jax.jit(jax.value_and_grad(loss))(params, x)
    reference = _with_xla(monkeypatch, jax.value_and_grad(loss), params, x)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(ours[1]), jax.tree_util.tree_leaves(reference[1])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_max_pool_matches_flax():
    import flax.linen as nn
    from mer_jax.model import max_pool_2x2
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 14, 3))
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
    weights = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 7, 3))
    ours = jax.grad(lambda x: jnp.sum(max_pool_2x2(x) * weights))(x)
    reference = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), strides=(2, 2)) * weights))(x)
    np.testing.assert_array_equal(ours, reference)     # no ties in random normals


def test_max_pool_gradient_shares_ties_as_jax_does():
    """On tied maxima (ReLU zeros, repeated values) the gradient is jax's for a max over each
    window: shared equally; odd edges get none."""
    from mer_jax.model import max_pool_2x2
    x = jnp.round(jax.random.normal(jax.random.PRNGKey(2), (2, 7, 9, 3)))  # many ties
    x = jnp.maximum(x, 0.0)
    weights = jax.random.normal(jax.random.PRNGKey(3), (2, 3, 4, 3))

    def reference_pool(x):
        return x[:, :6, :8].reshape(2, 3, 2, 4, 2, 3).max(axis=(2, 4))

    np.testing.assert_array_equal(max_pool_2x2(x), reference_pool(x))
    ours = jax.jit(jax.grad(lambda x: jnp.sum(max_pool_2x2(x) * weights)))(x)
    reference = jax.grad(lambda x: jnp.sum(reference_pool(x) * weights))(x)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    windows = x[:, :6, :8].reshape(2, 3, 2, 4, 2, 3)
    ties = jnp.sum(windows == reference_pool(x)[:, :, None, :, None], axis=(2, 4))
    assert int(jnp.sum(ties > 1)) > 5                   # the case is exercised


def test_gpu_lowering_keeps_xla_convolutions():
    """Lowered for CUDA, the CRNN's train gradient has XLA's convolutions (10 forward, 9 input
    gradients, 10 weight gradients) and no oneDNN call; lowered for CPU, the reverse."""
    config = ModelConfig(conv_channels=((8, 4),) * 5, lstm_units=(8, 8, 8), dense_units=(8, 8, 8))
    shape = (129, 128, 1)
    params = init_params(config, shape, jax.random.PRNGKey(0))
    x = jnp.ones((2, *shape))

    def loss(params, x, key):
        out = CRNN(config).apply({"params": params}, x, train=True, rngs={"dropout": key})
        return jnp.sum(out ** 2)

    traced = jax.jit(jax.grad(loss)).trace(params, x, jax.random.PRNGKey(1))
    cuda = traced.lower(lowering_platforms=("cuda",)).as_text()
    cpu = traced.lower(lowering_platforms=("cpu",)).as_text()
    assert "mer_conv" not in cuda and cuda.count("stablehlo.convolution") == 29
    assert "mer_conv_bias_relu_forward" in cpu and "stablehlo.convolution" not in cpu
