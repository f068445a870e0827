"""The paper's statistics over per-song KL divergences, and regression metrics.

Per Monte-Carlo iteration (paper §3, Tables 1-2): E = mean KL, M = median KL, W = p-value of the
paired Wilcoxon signed-rank test between the "mixed" and "sep" KLs of the same songs
(scipy.stats.wilcoxon, two-sided).

Median conventions: ``"true"`` (default) is the usual median (mean of the two middle values for
an even count); ``"paper"`` is the authors' convention, the upper of the two middle values
(element n // 2 of the sorted list), which reproduces the medians printed in Tables 1-2.
"""
from __future__ import annotations

import numpy as np
import scipy.stats

MEDIAN_CONVENTIONS = ("true", "paper")
STATS_HEADER = ("iteration", "E_mixed", "E_sep", "M_mixed", "M_sep", "W_mixed_sep")


def median(values: np.ndarray, convention: str = "true") -> float:
    """Median of a 1-D array under ``convention`` ("true" or "paper", see module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    if convention == "true":
        return float(np.median(values))
    if convention == "paper":
        return float(np.sort(values)[values.size // 2])
    raise ValueError(f"unknown median convention {convention!r}; choose from {MEDIAN_CONVENTIONS}")


def wilcoxon_p(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> float:
    """Paired Wilcoxon signed-rank p-value, two-sided or (``alternative="less"``, the skill
    gate's test) that ``a`` is lower than ``b``; NaN when undefined (no pairs, all differences
    0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0 or np.all(a == b):
        return float("nan")
    return float(scipy.stats.wilcoxon(a, b, alternative=alternative).pvalue)


def iteration_stats(iteration: int, kl: dict[str, np.ndarray],
                    median_convention: str = "true") -> dict[str, float]:
    """One row of the paper's table from per-song KLs {"mixed": (songs,), "sep": (songs,)}.

    Inputs that are absent give NaN in their columns (and in W).
    """
    row: dict[str, float] = {"iteration": iteration}
    for name in ("mixed", "sep"):
        values = kl.get(name)
        row[f"E_{name}"] = (float(np.mean(values, dtype=np.float64)) if values is not None
                            else np.nan)
        row[f"M_{name}"] = median(values, median_convention) if values is not None else np.nan
    both = "mixed" in kl and "sep" in kl
    row["W_mixed_sep"] = wilcoxon_p(kl["mixed"], kl["sep"]) if both else np.nan
    return {key: row[key] for key in STATS_HEADER}


def rmse(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Root-mean-square error per column: (songs, d) x2 -> (d,)."""
    return np.sqrt(np.mean(np.square(np.asarray(prediction) - np.asarray(truth)), axis=0))


def pearson_r(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pearson correlation per column: (songs, d) x2 -> (d,); NaN for a constant column."""
    truth, prediction = np.asarray(truth, np.float64), np.asarray(prediction, np.float64)
    t = truth - truth.mean(axis=0)
    p = prediction - prediction.mean(axis=0)
    denom = np.sqrt((t * t).sum(axis=0) * (p * p).sum(axis=0))
    varies = (np.ptp(truth, axis=0) > 0) & (np.ptp(prediction, axis=0) > 0)  # not rounding
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(varies & (denom > 0), (t * p).sum(axis=0) / denom, np.nan)


def partial_r(r_xy, r_xz, r_yz) -> np.ndarray:
    """Partial correlation of x and y given z from the three Pearson r (arrays alike); NaN where
    x or y is (almost) a linear function of z."""
    r_xy, r_xz, r_yz = (np.asarray(v, np.float64) for v in (r_xy, r_xz, r_yz))
    denom = np.sqrt(np.clip((1 - r_xz ** 2) * (1 - r_yz ** 2), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-12, (r_xy - r_xz * r_yz) / denom, np.nan)


def pearson_interval(r: float, n: int, z: float = 1.959964, controls: int = 0
                     ) -> tuple[float, float]:
    """95% interval of a Pearson r over ``n`` pairs by Fisher's z transform (of a partial r with
    ``controls`` variables held fixed: n - 3 - controls degrees of freedom); NaNs if too few."""
    if n - controls <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    centre, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), z / np.sqrt(n - 3 - controls)
    return float(np.tanh(centre - half)), float(np.tanh(centre + half))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as the input; NaNs are left out and kept)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted


def median_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Distribution-free interval of a median from order statistics: (low, high, coverage).

    With the n values sorted (NaNs left out), [x_(k), x_(n-k+1)] covers the population median with
    probability 1 - 2 P(Binom(n, 1/2) <= k - 1); k is the largest rank whose coverage is still
    >= ``level`` (so the coverage reported is at least ``level``: 96.1% for n = 9). NaNs when n
    is too small for any such interval (n < 6 at 95%)."""
    x = np.asarray(values, np.float64)
    x = np.sort(x[~np.isnan(x)])
    n = x.size
    best = None
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * scipy.stats.binom.cdf(k - 1, n, 0.5)
        if coverage < level:
            break
        best = (float(x[k - 1]), float(x[n - k]), float(coverage))
    return best or (float("nan"), float("nan"), float("nan"))
