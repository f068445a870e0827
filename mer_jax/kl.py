"""KL divergence between diagonal Gaussians, in pure JAX (the paper's Eq. 1-2).

P = N(mu_gt, diag sigma_gt^2) is the annotators' distribution, Q = N(mu_pr, diag sigma_pr^2) the
prediction; with n dimensions (n = 2: valence, arousal)

    KL[P||Q] = 1/2 [ sum_d (mu_pr,d - mu_gt,d)^2 / sigma_pr,d^2 + sum_d sigma_gt,d^2 / sigma_pr,d^2
                     - ln(prod_d sigma_gt,d^2 / prod_d sigma_pr,d^2) - n ].

Two entry points:

* :func:`gaussian_kl` is the jit-able, differentiable kernel, vectorized over any leading axes
  (``(..., n)`` -> ``(...)``); use it inside jitted code (a training loss). It requires positive
  standard deviations: it cannot raise on traced values, so a sigma <= 0 yields NaN or Inf there
  unless ``min_std`` clamps it.
* :func:`kl_divergence` is the checked host-side entry used by the evaluation: by default a
  sigma <= 0 (which the paper's linear output layer can emit) raises :class:`InvalidStdError`
  naming the offending rows; ``min_std=eps`` instead clamps every sigma to at least ``eps``
  (documented in the evaluation's output as a departure from the raw predictions).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


MIN_STD = 0.01   # the evaluation's default sigma floor (--min-std), and prediction's


class InvalidStdError(ValueError):
    """Standard deviations <= 0 (or non-finite) where a Gaussian needs a positive one."""

    def __init__(self, message: str, rows: np.ndarray):
        self.rows = rows
        super().__init__(message)


def gaussian_kl(mu_gt, sigma_gt, mu_pr, sigma_pr, min_std: float | None = None):
    """KL[N(mu_gt, sigma_gt^2) || N(mu_pr, sigma_pr^2)], diagonal, summed over the last axis.

    Args: four arrays broadcastable to ``(..., n)``. ``min_std``: if given, sigmas are clamped to
    at least this value before use (a static Python float).
    Returns: ``(...)`` KL values, in the dtype of the inputs.
    """
    if min_std is not None:
        sigma_gt = jnp.maximum(sigma_gt, min_std)
        sigma_pr = jnp.maximum(sigma_pr, min_std)
    var_gt = jnp.square(sigma_gt)
    var_pr = jnp.square(sigma_pr)
    n = jnp.broadcast_shapes(jnp.shape(mu_gt), jnp.shape(mu_pr),
                             jnp.shape(sigma_gt), jnp.shape(sigma_pr))[-1]
    mahalanobis = jnp.sum(jnp.square(mu_pr - mu_gt) / var_pr, axis=-1)
    trace = jnp.sum(var_gt / var_pr, axis=-1)
    log_det_ratio = jnp.sum(jnp.log(var_gt) - jnp.log(var_pr), axis=-1)
    return 0.5 * (mahalanobis + trace - log_det_ratio - n)


_gaussian_kl_jit = jax.jit(gaussian_kl, static_argnames=("min_std",))


def kl_divergence(mu_gt, sigma_gt, mu_pr, sigma_pr, *, min_std: float | None = None,
                  row_names=None) -> np.ndarray:
    """Checked, jitted KL for concrete arrays ``(songs, n)`` -> NumPy ``(songs,)``.

    With ``min_std=None`` (default) any sigma <= 0 or non-finite raises InvalidStdError, whose
    message lists the offending rows (by ``row_names`` if given, e.g. song ids).
    """
    arrays = [np.asarray(a, dtype=np.float32) for a in (mu_gt, sigma_gt, mu_pr, sigma_pr)]
    if min_std is None:
        for label, sigma in (("ground-truth", arrays[1]), ("predicted", arrays[3])):
            bad = ~(np.isfinite(sigma) & (sigma > 0))
            if bad.any():
                rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=-1)) \
                    if bad.ndim > 1 else np.flatnonzero(bad)
                names = [str(row_names[r]) if row_names is not None else str(r) for r in rows]
                shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
                raise InvalidStdError(
                    f"{len(rows)} rows have a {label} standard deviation <= 0 or non-finite "
                    f"(rows: {shown}); a Gaussian needs sigma > 0 - pass min_std (CLI: "
                    f"--min-std) to clamp instead", rows)
    return np.asarray(_gaussian_kl_jit(*arrays, min_std=min_std))


@functools.partial(jax.jit, static_argnames=("min_std",))
def kl_from_tables(truth, prediction, min_std: float | None = None):
    """KL from label tables ``(..., 4)`` ordered (valence mean, arousal mean, valence std,
    arousal std), as the model outputs and the store's ``labels`` are; returns ``(...)``."""
    return gaussian_kl(truth[..., :2], truth[..., 2:], prediction[..., :2], prediction[..., 2:],
                       min_std=min_std)
