"""mer_jax.lstm: the LSTM layer against flax's cell, and the stack's three implementations."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_model
from mer_jax import lstm
from mer_jax.model import CRNN
from mer_jax.training import steps

UNITS = (16, 8, 4)


class Stack(nn.Module):
    """The CRNN's stack of LSTMs on its own: ``(batch, T, in)`` -> the last final h."""
    units: tuple = UNITS

    @nn.compact
    def __call__(self, x):
        return lstm.stack(x, lstm.stack_weights(self.units, x.shape[-1]))


def _run(monkeypatch, implementation, params, x):
    """The stack's output and gradients (of a sum of squares) under ``implementation``."""
    monkeypatch.setenv(lstm.VARIABLE, implementation)
    loss = lambda p: jnp.sum(Stack().apply(p, x) ** 2)
    return Stack().apply(params, x), jax.grad(loss)(params)


def test_lstm_is_flaxs_optimized_cell_with_the_input_projection_hoisted():
    """lstm.LSTM against nn.RNN(nn.OptimizedLSTMCell): the same initial parameters (so
    checkpoints of either load into the other), outputs and gradients to float tolerance."""

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            zeros = jnp.zeros((x.shape[0], 16))
            return nn.RNN(nn.OptimizedLSTMCell(16, name="lstm"))(
                x, initial_carry=(zeros, zeros), return_carry=True)

    class Ours(nn.Module):
        @nn.compact
        def __call__(self, x):
            return lstm.LSTM(16, name="lstm")(x)

    x = jax.random.normal(jax.random.PRNGKey(1), (3, 40, 7))
    ref, ours = Reference(), Ours()
    params = ref.init(jax.random.PRNGKey(0), x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params,
                           ours.init(jax.random.PRNGKey(0), x))
    (carry_a, out_a), (carry_b, out_b) = ref.apply(params, x), ours.apply(params, x)
    np.testing.assert_allclose(out_b, out_a, atol=1e-6)
    np.testing.assert_allclose(carry_b[0], carry_a[0], atol=1e-6)
    np.testing.assert_allclose(carry_b[1], carry_a[1], atol=1e-6)
    loss = lambda model: lambda p: jnp.sum(model.apply(p, x)[1] ** 2)
    jax.tree_util.tree_map(functools.partial(np.testing.assert_allclose, atol=1e-5),
                           jax.grad(loss(ours))(params), jax.grad(loss(ref))(params))


@pytest.mark.parametrize("steps_", [1, 2, 3, 4, 29])
def test_wavefront_is_the_layer_by_layer_stack(monkeypatch, steps_):
    """All layers in one scan (T + L - 1 dependent steps) give the layer-by-layer outputs and
    gradients to float tolerance, also for sequences no longer than the stack is deep (no scan
    at all, or a scan of one step)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (3, steps_, 5))
    params = Stack().init(jax.random.PRNGKey(0), x)
    out_scan, grads_scan = _run(monkeypatch, "scan", params, x)
    out_wave, grads_wave = _run(monkeypatch, "wavefront", params, x)
    assert out_wave.shape == (3, UNITS[-1]) and np.abs(out_scan).max() > 1e-3
    np.testing.assert_allclose(out_wave, out_scan, atol=1e-6)
    jax.tree_util.tree_map(functools.partial(np.testing.assert_allclose, atol=1e-5, rtol=1e-5),
                           grads_wave, grads_scan)
    if steps_ > 1:   # the comparison can fail: one step less gives another output
        assert np.abs(Stack().apply(params, x[:, 1:]) - out_scan).max() > 1e-4
    # and the two really differ: L scans of T steps against one of T - L + 1 (none if T < L)
    assert _scan_lengths(monkeypatch, "scan", params, x) == [steps_] * len(UNITS)
    assert _scan_lengths(monkeypatch, "wavefront", params, x) == (
        [steps_ - len(UNITS) + 1] if steps_ >= len(UNITS) else [])


def _scan_lengths(monkeypatch, implementation, params, x):
    monkeypatch.setenv(lstm.VARIABLE, implementation)
    jaxpr = jax.make_jaxpr(lambda p: Stack().apply(p, x))(params).jaxpr
    return [eqn.params["length"] for eqn in jaxpr.eqns if eqn.primitive.name == "scan"]


def test_wavefront_crnn_trains_as_the_scan_one(monkeypatch):
    """In the CRNN (the tests' small config, vmapped over 2 models as MultiModel does), the
    wavefront LSTMs give the same predictions and gradients to float tolerance."""
    config = tiny_model()
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 129, 128, 1))
    params = steps.create_states(config, (129, 128, 1), jax.random.split(jax.random.PRNGKey(0), 2),
                                 1e-3).params

    def run(implementation):
        monkeypatch.setenv(lstm.VARIABLE, implementation)
        apply = lambda p, x: CRNN(config).apply({"params": p}, x, train=False)
        loss = lambda p, x: jnp.sum(apply(p, x) ** 2)
        return jax.jit(jax.vmap(apply))(params, x), jax.jit(jax.vmap(jax.grad(loss)))(params, x)

    (out_scan, grads_scan), (out_wave, grads_wave) = run("scan"), run("wavefront")
    np.testing.assert_allclose(out_wave, out_scan, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads_wave), jax.tree_util.tree_leaves(grads_scan)):
        np.testing.assert_allclose(a, b, atol=1e-5 * (np.abs(b).max() + 1e-6))


def test_cudnn_weights_are_cudnns_layout():
    """The flat vector handed to cuDNN, read back by jax.experimental.rnn's own unpacking and run
    by its reference LSTM (what its GPU tests compare cuDNN with), gives our layer's outputs and
    final state: the gate order and the transposes are right. (cuDNN itself needs a GPU.)"""
    from jax.experimental import rnn
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 11, 5))
    params = lstm.LSTM(6).init(jax.random.PRNGKey(0), x)
    (c, h), outputs = lstm.LSTM(6).apply(params, x)
    weights = params["params"]
    w = lstm.Weights(*(jnp.concatenate([weights[f"{kind}{g}"][leaf] for g in "ifgo"], axis=-1)
                       for kind, leaf in (("i", "kernel"), ("h", "kernel"), ("h", "bias"))))
    flat = lstm.cudnn_weights(w)
    assert flat.size == rnn.get_num_params_in_lstm(5, 6, 1, False)
    zeros = jnp.zeros((1, 3, 6))
    y, h_n, c_n = rnn.lstm_ref(x, zeros, zeros, *rnn.unpack_lstm_weights(flat, 5, 6, 1, False),
                               jnp.full((3,), 11, jnp.int32), 5, 6, 1, 0.0, False)
    np.testing.assert_allclose(y, outputs, atol=1e-6)
    np.testing.assert_allclose(h_n[0], h, atol=1e-6)
    np.testing.assert_allclose(c_n[0], c, atol=1e-6)


def test_the_implementation_is_named_checked_and_recorded(monkeypatch):
    monkeypatch.delenv(lstm.VARIABLE, raising=False)
    assert lstm.implementation() == "scan" and lstm.status() == "scan"
    monkeypatch.setenv(lstm.VARIABLE, "wavefront")
    assert lstm.status() == "wavefront (MER_JAX_LSTM=wavefront)"
    monkeypatch.setenv(lstm.VARIABLE, "fast")
    with pytest.raises(ValueError, match="MER_JAX_LSTM='fast': choose one of scan, wavefront"):
        lstm.implementation()


def test_cudnn_is_refused_where_it_cannot_run(monkeypatch):
    """cuDNN's LSTM: float32 on a CUDA GPU, one model per compiled call; each other case is a
    clear error before anything compiles."""
    x = jnp.zeros((2, 7, 5))
    params = Stack().init(jax.random.PRNGKey(0), x)
    monkeypatch.setenv(lstm.VARIABLE, "cudnn")
    with pytest.raises(ValueError, match="float32 only"):
        Stack().apply(params, x.astype(jnp.bfloat16))
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match="needs a CUDA GPU; the backend is cpu"):
            Stack().apply(params, x)
    with pytest.raises(ValueError, match="one model per compiled call, not 3 vmapped"):
        steps.MultiModel(tiny_model(), 1e-3, "kl", 3, chunk=3)
    steps.MultiModel(tiny_model(), 1e-3, "kl", 3, chunk=1)
