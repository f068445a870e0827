"""The CRNN's convolution layer, ``relu(conv(x, w) + b)``, on CPU done by oneDNN.

``conv_bias_relu(x, w, b)`` takes the stride-1, unpadded ("VALID"), undilated, ungrouped float32
convolutions in NHWC/HWIO layout of the paper's CRNN (its only convolutions). It is a
``jax.custom_vjp`` whose forward pass (bias and ReLU fused) and backward passes (data gradient;
weight and bias gradients in one call) are XLA FFI custom calls (``onednn_conv.cc``).

Only on CPU: on a GPU/TPU default backend, with ``MER_JAX_CONV=xla``, or for other dtypes the
same expression runs in lax and the kernels are never built, loaded or traced (``status()`` says
why); when the kernels cannot be built, the lax path stays (the designed fallback).

Under ``jax.vmap`` over models (each with its own weights) XLA turns a convolution into a grouped
one, one group per model; the kernels run one convolution per model instead. On the lax path
``MER_JAX_VMAP_CONV=loop`` does the same (an unrolled loop of K ordinary convolutions, forward
and backward), so that vmapping K models batches only what batches well (the LSTMs' per-step
products, the dense layers); ``grouped`` (default) leaves XLA's rule. Values are the same to
float tolerance either way.
"""
from __future__ import annotations

import ctypes
import functools
import os

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
VMAP_VARIABLE = "MER_JAX_VMAP_CONV"      # "grouped" (XLA's vmap rule, default) or "loop"
_TARGETS = {"mer_conv_bias_relu_forward": "MerConvBiasReluForward",
            "mer_conv_backward_data": "MerConvBackwardData",
            "mer_conv_backward_weights_bias": "MerConvBackwardWeightsBias"}


@functools.lru_cache(maxsize=1)
def _load() -> str | None:
    """Build (if needed) and register the kernels; None when ready, else why not."""
    from mer_jax.kernels.build import KernelBuildError, build
    try:
        library = ctypes.cdll.LoadLibrary(str(build()))
    except (KernelBuildError, OSError) as err:
        return str(err)
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                    platform="cpu")
    return None


def status() -> str:
    """"onednn", or "xla (<reason>)"; builds and loads the kernels only when on CPU."""
    if os.environ.get("MER_JAX_CONV", "auto") == "xla":
        return "xla (MER_JAX_CONV=xla)"
    if (backend := jax.default_backend()) != "cpu":
        return f"xla (default backend {backend})"
    reason = _load()
    return "onednn" if reason is None else f"xla ({reason})"


def enabled() -> bool:
    return status() == "onednn"


def _xla_conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=_NHWC)


def _out_shape(x, w):
    n, h, wd, _ = x.shape
    kh, kw, _, o = w.shape
    return jax.ShapeDtypeStruct((n, h - kh + 1, wd - kw + 1, o), x.dtype)


def _call(target, result, *args):
    return jax.ffi.ffi_call(target, result, vmap_method="sequential")(*args)


def _xla_conv_bias_relu(x, w, b):
    return jax.nn.relu(_xla_conv(x, w) + b)


def _forward_bias_relu(x, w, b):
    return lax.platform_dependent(
        x, w, b, default=_xla_conv_bias_relu,
        cpu=lambda x, w, b: _call("mer_conv_bias_relu_forward", _out_shape(x, w), x, w, b))


@jax.custom_vjp
def _conv_bias_relu_onednn(x, w, b):
    return _forward_bias_relu(x, w, b)


def _conv_bias_relu_fwd(x, w, b):
    y = _forward_bias_relu(x, w, b)
    return y, (x, w, y)             # the ReLU's gradient mask comes from y: no pre-activation kept


def _conv_bias_relu_bwd(residuals, dy):
    x, w, y = residuals
    g = jnp.where(y > 0, dy, 0.0)   # jax.nn.relu's gradient: 0 where the pre-activation is <= 0

    def onednn(x, w, g):
        dx = _call("mer_conv_backward_data", jax.ShapeDtypeStruct(x.shape, x.dtype), g, w)
        dw, db = _call("mer_conv_backward_weights_bias",
                       (jax.ShapeDtypeStruct(w.shape, w.dtype),
                        jax.ShapeDtypeStruct(w.shape[-1:], w.dtype)), x, g)
        return dx, dw, db

    def xla(x, w, g):
        return (*jax.vjp(_xla_conv, x, w)[1](g), g.sum(axis=(0, 1, 2)))

    return lax.platform_dependent(x, w, g, cpu=onednn, default=xla)


_conv_bias_relu_onednn.defvjp(_conv_bias_relu_fwd, _conv_bias_relu_bwd)


def _looped_under_vmap(fn):
    """``fn`` (arrays -> pytree of arrays) whose vmap calls ``fn`` once per batch member, an
    unrolled loop of unbatched calls, instead of batching its operations."""
    fn = jax.custom_batching.custom_vmap(fn)

    @fn.def_vmap
    def rule(axis_size, in_batched, *args):
        outs = [fn(*(a[i] if batched else a for a, batched in zip(args, in_batched)))
                for i in range(axis_size)]
        stacked = jax.tree_util.tree_map(lambda *o: jnp.stack(o), *outs)
        return stacked, jax.tree_util.tree_map(lambda _: True, stacked)

    return fn


_looped_forward = _looped_under_vmap(_xla_conv_bias_relu)
_looped_gradients = _looped_under_vmap(lambda x, w, g: jax.vjp(_xla_conv, x, w)[1](g))


@jax.custom_vjp
def _conv_bias_relu_looped(x, w, b):
    return _looped_forward(x, w, b)


def _looped_fwd(x, w, b):
    y = _looped_forward(x, w, b)
    return y, (x, w, y)


def _looped_bwd(residuals, dy):
    x, w, y = residuals
    g = jnp.where(y > 0, dy, 0.0)
    dx, dw = _looped_gradients(x, w, g)
    return dx, dw, g.sum(axis=(0, 1, 2))


_conv_bias_relu_looped.defvjp(_looped_fwd, _looped_bwd)


def vmap_mode() -> str:
    """``MER_JAX_VMAP_CONV``: "grouped" (default) or "loop"; anything else is an error."""
    mode = os.environ.get(VMAP_VARIABLE, "grouped")
    if mode not in ("grouped", "loop"):
        raise ValueError(f"{VMAP_VARIABLE}={mode!r}: use 'grouped' or 'loop'")
    return mode


def conv_bias_relu(x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``relu(conv(x, w) + b)``, "VALID", stride 1: ``x (N, H, W, C)``, ``w (KH, KW, C, O)``,
    ``b (O,)`` -> ``(N, H - KH + 1, W - KW + 1, O)``. On CPU one oneDNN call with the bias and
    ReLU fused (and one for the weight and bias gradients); elsewhere, with ``MER_JAX_CONV=xla``
    or for non-float32 inputs, the same expression in lax (vmapped: see ``MER_JAX_VMAP_CONV``)."""
    if enabled() and all(a.dtype == jnp.float32 for a in (x, w, b)):
        return _conv_bias_relu_onednn(x, w, b)
    if vmap_mode() == "loop":
        return _conv_bias_relu_looped(x, w, b)
    return _xla_conv_bias_relu(x, w, b)

