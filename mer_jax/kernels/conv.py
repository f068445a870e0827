"""Convolutions with the CRNN's cases on CPU done by oneDNN.

``conv_bias_relu(x, w, b)`` (the CRNN's layers) and ``conv_general_dilated`` (lax's signature, a
drop-in for flax.linen.Conv) take stride-1, unpadded ("VALID", or "SAME" with a 1x1 kernel),
undilated, ungrouped float32 convolutions in NHWC/HWIO layout - every convolution of the paper's
CRNN. Each is a ``jax.custom_vjp`` whose forward and backward passes (data and weight gradients;
the bias and ReLU fused into the forward call, the bias gradient into the weight-gradient call)
are XLA FFI custom calls (``onednn_conv.cc``); ``lax.platform_dependent`` keeps
``lax.conv_general_dilated`` for GPU/TPU. ``MER_JAX_CONV=xla`` turns the oneDNN path off; when
the kernels cannot be built, it stays off (``status()`` says why).
"""
from __future__ import annotations

import ctypes
import functools
import os

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
_TARGETS = {"mer_conv_forward": "MerConvForward",
            "mer_conv_bias_relu_forward": "MerConvBiasReluForward",
            "mer_conv_backward_data": "MerConvBackwardData",
            "mer_conv_backward_weights": "MerConvBackwardWeights",
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
    """"onednn", or "xla (<reason>)"."""
    if os.environ.get("MER_JAX_CONV", "auto") == "xla":
        return "xla (MER_JAX_CONV=xla)"
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


def _require_kernels() -> None:
    if (reason := _load()) is not None:
        raise RuntimeError(f"the oneDNN convolution kernels are unavailable: {reason}")


def _forward(x, w):
    _require_kernels()
    return lax.platform_dependent(
        x, w, cpu=lambda x, w: _call("mer_conv_forward", _out_shape(x, w), x, w),
        default=_xla_conv)


def _backward(x, w, dy):
    def onednn(x, w, dy):
        dx = _call("mer_conv_backward_data", jax.ShapeDtypeStruct(x.shape, x.dtype), dy, w)
        dw = _call("mer_conv_backward_weights", jax.ShapeDtypeStruct(w.shape, w.dtype), x, dy)
        return dx, dw

    def xla(x, w, dy):
        return jax.vjp(_xla_conv, x, w)[1](dy)

    return lax.platform_dependent(x, w, dy, cpu=onednn, default=xla)


@jax.custom_vjp
def conv_valid(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """``x (N, H, W, C)``, ``w (KH, KW, C, O)`` -> ``(N, H - KH + 1, W - KW + 1, O)``."""
    return _forward(x, w)


def _conv_fwd(x, w):
    return _forward(x, w), (x, w)


def _conv_bwd(residuals, dy):
    return _backward(*residuals, dy)


conv_valid.defvjp(_conv_fwd, _conv_bwd)


def _xla_conv_bias_relu(x, w, b):
    return jax.nn.relu(_xla_conv(x, w) + b)


def _forward_bias_relu(x, w, b):
    _require_kernels()
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


def conv_bias_relu(x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``relu(conv(x, w) + b)``, "VALID", stride 1: ``x (N, H, W, C)``, ``w (KH, KW, C, O)``,
    ``b (O,)`` -> ``(N, H - KH + 1, W - KW + 1, O)``. On CPU one oneDNN call with the bias and
    ReLU fused (and one for the weight and bias gradients); elsewhere, with ``MER_JAX_CONV=xla``
    or for non-float32 inputs, the same expression in lax."""
    if enabled() and all(a.dtype == jnp.float32 for a in (x, w, b)):
        return _conv_bias_relu_onednn(x, w, b)
    return _xla_conv_bias_relu(x, w, b)


def _is_zero_padding(padding, kernel_shape) -> bool:
    if padding == "VALID":
        return True
    if isinstance(padding, str):
        return padding.upper() == "SAME" and all(k == 1 for k in kernel_shape)
    return all(tuple(p) == (0, 0) for p in padding)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``'s signature; the oneDNN path when the case allows it."""
    simple = (lhs.ndim == 4 and lhs.dtype == jnp.float32 and rhs.dtype == jnp.float32
              and tuple(window_strides) == (1, 1) and _is_zero_padding(padding, rhs.shape[:2])
              and all(d == 1 for d in (lhs_dilation or (1, 1)))
              and all(d == 1 for d in (rhs_dilation or (1, 1)))
              and feature_group_count == 1 and batch_group_count == 1
              and preferred_element_type in (None, jnp.float32)
              and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
              == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
    if simple and enabled():
        return conv_valid(lhs, rhs)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count,
                                    precision, preferred_element_type)
