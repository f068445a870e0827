"""The oneDNN convolution kernels: built and used on CPU, and the same function as XLA's.

Where the kernels cannot be built (no x86/g++/oneDNN) the model runs XLA's convolutions by design:
the tests of the kernels themselves are skipped there with the reason; the rest run either way."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_model
from mer_jax.kernels import conv
from mer_jax.model import CRNN, init_params

TINY_MODEL = tiny_model()

SHAPES = [  # (N, H, W, C, K, O): the CRNN's kinds of convolution at small sizes
    (2, 20, 31, 1, 5, 8), (2, 9, 11, 4, 1, 6), (1, 7, 7, 16, 3, 5), (3, 12, 40, 8, 5, 16)]


def _with_xla(monkeypatch, fn, *args):
    monkeypatch.setenv("MER_JAX_CONV", "xla")
    try:
        return jax.jit(fn)(*args)
    finally:
        monkeypatch.delenv("MER_JAX_CONV")


def _buildable() -> str | None:
    """Why the kernels cannot exist on this host, or None."""
    import platform
    import shutil
    from mer_jax.kernels.build import KernelBuildError, _onednn_dirs
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"oneDNN kernels are built for x86-64 only, not {platform.machine()}"
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        return "no C++ compiler ($CXX / g++)"
    try:
        _onednn_dirs()
    except KernelBuildError as err:
        return str(err)
    return None


needs_kernels = pytest.mark.skipif(_buildable() is not None, reason=str(_buildable()))


@needs_kernels
def test_kernels_are_built_and_enabled_on_cpu():
    assert conv.status() == "onednn", conv.status()


@needs_kernels
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


@needs_kernels
def test_vmapped_models_match():
    """The model axis of the vmapped trainer: the fused layer and its gradients under vmap (the
    custom calls map sequentially) equal XLA's per model."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 2, 10, 12, 4)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 4, 5)), jnp.float32)
    bias = jnp.asarray(rng.standard_normal((3, 5)), jnp.float32)

    def loss(fn):
        return lambda x, k, b: jnp.sum(jnp.sin(fn(x, k, b)))

    got = jax.jit(jax.vmap(conv.conv_bias_relu))(x, kernel, bias)
    grads = jax.jit(jax.vmap(jax.grad(loss(conv.conv_bias_relu), argnums=(1, 2))))(x, kernel, bias)
    assert "mer_conv_bias_relu_forward" in jax.jit(jax.vmap(conv.conv_bias_relu)).lower(
        x, kernel, bias).as_text()
    for m in range(3):
        np.testing.assert_allclose(got[m], conv._xla_conv_bias_relu(x[m], kernel[m], bias[m]),
                                   rtol=1e-5, atol=1e-4)
        expected = jax.grad(loss(conv._xla_conv_bias_relu), argnums=(1, 2))(x[m], kernel[m],
                                                                          bias[m])
        for a, b in zip((grads[0][m], grads[1][m]), expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_other_dtypes_and_xla_mode_stay_in_lax(monkeypatch):
    """bfloat16 inputs (mixed precision) and MER_JAX_CONV=xla never reach the custom calls."""
    x, kernel, bias = jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 2, 4)), jnp.zeros(4)
    half = [a.astype(jnp.bfloat16) for a in (x, kernel, bias)]
    text = jax.jit(conv.conv_bias_relu).lower(*half).as_text()
    assert "mer_conv" not in text and "stablehlo.convolution" in text
    monkeypatch.setenv("MER_JAX_CONV", "xla")
    assert conv.status() == "xla (MER_JAX_CONV=xla)"
    fresh = jax.jit(lambda *args: conv.conv_bias_relu(*args))   # traced after the setting
    assert "mer_conv" not in fresh.lower(x, kernel, bias).as_text()


@needs_kernels
def test_crnn_is_the_same_function_with_either_backend(monkeypatch):
    """Same parameters, same outputs and gradients, oneDNN or XLA convolutions."""
    config = TINY_MODEL               # the training tests' model: its init compiles once
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


@needs_kernels
def test_gpu_lowering_keeps_xla_convolutions():
    """Lowered for CUDA, the CRNN's train gradient has XLA's convolutions (10 forward, 9 input
    gradients, 10 weight gradients) and no oneDNN call; lowered for CPU, the reverse."""
    config = TINY_MODEL
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


def test_vmapped_convolutions_looped_are_the_grouped_ones(monkeypatch):
    """MER_JAX_VMAP_CONV=loop on the lax path: K models vmapped give the values and gradients of
    XLA's grouped convolutions, with no grouped convolution in the program."""
    monkeypatch.setenv("MER_JAX_CONV", "xla")
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((3, 2, 12, 15, 4)), jnp.float32)   # K = 3 models
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4, 6)) * 0.3, jnp.float32)
    b = jnp.asarray(rng.standard_normal((3, 6)) * 0.1, jnp.float32)

    results = {}
    for mode in ("grouped", "loop"):
        monkeypatch.setenv(conv.VMAP_VARIABLE, mode)   # read when traced: a new function each

        def loss(x, w, b):
            return jnp.sum(conv.conv_bias_relu(x, w, b) ** 2)

        step = jax.vmap(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        text = str(jax.make_jaxpr(step)(x, w, b))
        assert ("feature_group_count=3" in text) == (mode == "grouped"), mode
        results[mode] = jax.jit(step)(x, w, b)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
                           results["loop"], results["grouped"])
    monkeypatch.setenv(conv.VMAP_VARIABLE, "sideways")
    with pytest.raises(ValueError, match="MER_JAX_VMAP_CONV"):
        conv.conv_bias_relu(x[0], w[0], b[0])
