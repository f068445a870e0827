"""The CRNN's stacked LSTMs: flax ``OptimizedLSTMCell``'s parameters, and three ways to run them.

A stack of L layers over a sequence ``(batch, T, features)`` is sequential in time, and on an
accelerator at the paper's batch of 8 its L x T dependent steps, not its arithmetic, likely bound
the CRNN's step (an estimate: the H200's paper step took 0.07-0.08 s for about 2 ms of matrix
products at its peak; BENCHMARKS.md). ``MER_JAX_LSTM`` (read when the model is traced) says how
to run them:

  scan       (default) layer after layer: each layer's input projection for all T steps as one
             product, then a scan of T steps of one ``h x (units, 4 units)`` product each;
             L x T dependent steps.
  wavefront  all layers in one scan: step s runs layer l at time s - l, its input the previous
             step's output of layer l - 1; T + L - 1 dependent steps (the L - 1 first and last
             ones, where some layers idle, outside the scan). The same function to float
             tolerance (layers after the first multiply [input, h] by [kernel_in; kernel_h],
             one product per step); any backend, vmapped too.
  cudnn      cuDNN's LSTM kernels (``jax.experimental.rnn``), forward and backward, one call per
             layer: CUDA GPUs, float32 (TF32 products, as XLA's default on such GPUs), one model
             per compiled call (it has no vmap rule: ``models_in_parallel`` 1 on one device).

All three give the same parameters (names, shapes, initial values), so a checkpoint trained with
one runs with the others; the choice is recorded for each start of a run in its
``run_<mode>.json``, like the convolutions' (``mer_jax.kernels.conv``), and is not part of a run's
identity (``mer_jax.training.workdir``).
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

VARIABLE = "MER_JAX_LSTM"
IMPLEMENTATIONS = ("scan", "wavefront", "cudnn")


def implementation() -> str:
    """``MER_JAX_LSTM``: one of :data:`IMPLEMENTATIONS` ("scan" when unset); anything else is an
    error naming the variable."""
    value = os.environ.get(VARIABLE, "scan")
    if value not in IMPLEMENTATIONS:
        raise ValueError(f"{VARIABLE}={value!r}: choose one of {', '.join(IMPLEMENTATIONS)}")
    return value


def status() -> str:
    """What runs the LSTMs, for run records: e.g. "scan" or "cudnn (MER_JAX_LSTM=cudnn)"."""
    name = implementation()
    return name if VARIABLE not in os.environ else f"{name} ({VARIABLE}={name})"


class Weights(NamedTuple):
    """One layer's parameters as products use them: ``kernel_in (in, 4 units)``, ``kernel_h
    (units, 4 units)``, ``bias (4 units,)``, gates in the order i, f, g, o."""
    kernel_in: jnp.ndarray
    kernel_h: jnp.ndarray
    bias: jnp.ndarray


def _make_weights(units: int, in_features: int) -> Weights:
    """The parameters of ``OptimizedLSTMCell(units)`` (its ``DenseParams`` named ``ii`` ...
    ``io`` and ``hi`` ... ``ho``), created in the calling module's compact method."""
    dense = functools.partial(nn.recurrent.DenseParams, units, param_dtype=jnp.float32,
                              bias_init=nn.initializers.zeros_init())
    inputs = [dense(use_bias=False, kernel_init=nn.initializers.lecun_normal(),
                    name=f"i{gate}")(jnp.zeros((1, in_features)))[0] for gate in "ifgo"]
    hidden = [dense(use_bias=True, kernel_init=nn.initializers.orthogonal(),
                    name=f"h{gate}")(jnp.zeros((1, units))) for gate in "ifgo"]
    return Weights(jnp.concatenate(inputs, axis=-1),
                   jnp.concatenate([k for k, _ in hidden], axis=-1),
                   jnp.concatenate([b for _, b in hidden], axis=-1))


class LSTMWeights(nn.Module):
    """One layer's parameters, :class:`Weights` in float32, for inputs of ``in_features``."""
    units: int

    @nn.compact
    def __call__(self, in_features: int) -> Weights:
        return _make_weights(self.units, in_features)


def stack_weights(units: tuple[int, ...], in_features: int) -> list[Weights]:
    """The stack's layers' :class:`Weights` (``LSTMWeights`` named ``lstm_0``, ``lstm_1``, ...,
    layer k reading layer k - 1's ``units``), created in the calling module's compact method."""
    widths = (in_features, *units[:-1])
    return [LSTMWeights(u, name=f"lstm_{k}")(w) for k, (u, w) in enumerate(zip(units, widths))]


def _cell(z: jnp.ndarray, c: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Gate pre-activations ``z (batch, 4 units)`` and the cell ``c`` -> the new ``(c, h)``."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
    return c, nn.sigmoid(o) * jnp.tanh(c)


def _cast(w: Weights, dtype) -> Weights:
    return Weights(*(a.astype(dtype) for a in w))


def scan_layer(x: jnp.ndarray, w: Weights):
    """One layer, ``(batch, T, in)`` -> (final ``(c, h)``, outputs ``(batch, T, units)``), in
    ``x``'s dtype: the input projection of all T steps as one product, then a scan."""
    w = _cast(w, x.dtype)
    zeros = jnp.zeros((x.shape[0], w.kernel_h.shape[0]), x.dtype)
    projected = jnp.dot(x, w.kernel_in) + w.bias                    # (batch, T, 4 units)

    def step(carry, z):
        c, h = carry
        carry = _cell(z + jnp.dot(h, w.kernel_h), c)
        return carry, carry[1]

    carry, outputs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(projected, 0, 1))
    return carry, jnp.swapaxes(outputs, 0, 1)


def wavefront(x: jnp.ndarray, weights: list[Weights]) -> jnp.ndarray:
    """The stack over ``(batch, T, in)`` -> the last layer's final ``h (batch, units)``, all
    layers in one scan of T - L + 1 steps (step s: layer l at time s - l) and L - 1 steps on
    either side of it, where the layers before or after their sequence idle."""
    weights = [_cast(w, x.dtype) for w in weights]
    layers, steps = len(weights), x.shape[1]
    first = jnp.dot(x, weights[0].kernel_in) + weights[0].bias        # (batch, T, 4 units)
    # layers after the first: [input, h] x [kernel_in; kernel_h], one product per step
    joined = [None] + [jnp.concatenate([w.kernel_in, w.kernel_h]) for w in weights[1:]]
    state = [(jnp.zeros((x.shape[0], w.kernel_h.shape[0]), x.dtype),) * 2 for w in weights]

    def advance(state, z_first, active):
        new = list(state)
        for l in active:
            c, h = state[l]
            z = (z_first + jnp.dot(h, weights[0].kernel_h) if l == 0 else
                 jnp.dot(jnp.concatenate([state[l - 1][1], h], -1), joined[l]) + weights[l].bias)
            new[l] = _cell(z, c)
        return new

    def edge(state, s):
        active = [l for l in range(layers) if 0 <= s - l < steps]
        return advance(state, first[:, s] if s < steps else None, active)

    full_from, full_to = layers - 1, steps        # the steps where every layer runs
    for s in range(min(full_from, steps + layers - 1)):
        state = edge(state, s)
    if full_to > full_from:
        state, _ = jax.lax.scan(lambda st, z: (advance(st, z, range(layers)), None), state,
                                jnp.swapaxes(first[:, full_from:full_to], 0, 1))
    for s in range(max(full_to, full_from), steps + layers - 1):
        state = edge(state, s)
    return state[-1][1]


def cudnn_weights(w: Weights) -> jnp.ndarray:
    """One layer's :class:`Weights` -> the flat vector of ``jax.experimental.rnn`` (cuDNN's
    layout: W_ih ``(4 units, in)``, W_hh ``(4 units, units)``, b_ih, b_hh; gates i, f, g, o as
    ours); the one bias goes to b_ih, b_hh is zero."""
    return jnp.concatenate([w.kernel_in.T.reshape(-1), w.kernel_h.T.reshape(-1), w.bias,
                            jnp.zeros_like(w.bias)])


def cudnn(x: jnp.ndarray, weights: list[Weights]) -> jnp.ndarray:
    """The stack through cuDNN, one call per layer -> the last layer's final ``h``."""
    from jax.experimental import rnn
    if x.dtype != jnp.float32:
        raise ValueError(f"{VARIABLE}=cudnn runs float32 only, not {x.dtype} "
                         "(model.compute_dtype=bfloat16 needs scan or wavefront)")
    if jax.default_backend() != "gpu":
        raise ValueError(f"{VARIABLE}=cudnn needs a CUDA GPU; the backend is "
                         f"{jax.default_backend()} (use scan or wavefront)")
    batch, steps, _ = x.shape
    lengths = jnp.full((batch,), steps, jnp.int32)
    for w in weights:
        units = w.kernel_h.shape[0]
        zeros = jnp.zeros((1, batch, units), x.dtype)
        try:
            x, h, _ = rnn.lstm(x, zeros, zeros, cudnn_weights(w), lengths,
                               input_size=x.shape[-1], hidden_size=units, num_layers=1,
                               dropout=0.0, bidirectional=False)
        except NotImplementedError as err:    # e.g. vmapped: cuDNN's LSTM has no vmap rule
            raise ValueError(f"{VARIABLE}=cudnn runs one model per compiled call, not vmapped "
                             f"models (set models_in_parallel=1): {err}") from None
    return h[0]


def stack(x: jnp.ndarray, weights: list[Weights]) -> jnp.ndarray:
    """The stacked LSTMs over ``(batch, T, in)`` in ``x``'s dtype -> the last layer's final
    hidden state ``(batch, units)``, run as ``MER_JAX_LSTM`` says."""
    name = implementation()
    if name == "wavefront":
        return wavefront(x, weights)
    if name == "cudnn":
        return cudnn(x, weights)
    for w in weights:
        carry, x = scan_layer(x, w)
    return carry[1]


class LSTM(nn.Module):
    """One layer as a module: ``(batch, T, in)`` -> (final ``(c, h)``, outputs ``(batch, T,
    units)``), the parameters of flax's ``OptimizedLSTMCell`` under ``nn.RNN`` (the same
    function to float tolerance), run by :func:`scan_layer` (as fast as ``nn.RNN`` or a few
    percent faster for the paper's LSTMs on the 2-core CPU, benchmarks/lstm_scan.py)."""
    units: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray):
        return scan_layer(x.astype(self.dtype), _make_weights(self.units, x.shape[-1]))
