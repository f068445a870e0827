"""Russell quadrants: the categorical reading of valence and arousal, and its scores.

On the 0-1 scale split at 0.5 (a value of exactly 0.5 counts as positive / high):
Q1 = positive valence, high arousal; Q2 = negative, high; Q3 = negative, low; Q4 = positive, low.
A quadrant-labelled dataset (the 4Q dataset, ``mer_jax.data.fourq``) gets regression targets
that are proxies: the quadrant's centre (0.25 or 0.75 on each axis) with std ``PROXY_STD``, the
std of a uniform distribution over the half axis; such a dataset is scored by quadrant accuracy,
never by KL alone.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
CENTRES = {"Q1": (0.75, 0.75), "Q2": (0.25, 0.75), "Q3": (0.25, 0.25), "Q4": (0.75, 0.25)}
PROXY_STD = 0.5 / math.sqrt(12)          # 0.144: uniform over a half axis of width 0.5
SPLIT = 0.5


def quadrant_of(valence, arousal) -> np.ndarray:
    """Quadrant indices 0-3 (Q1-Q4) of valence/arousal means, arrays of any equal shape."""
    positive = np.asarray(valence) >= SPLIT
    high = np.asarray(arousal) >= SPLIT
    return np.where(high, np.where(positive, 0, 1), np.where(positive, 3, 2))


def hits(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """``(songs,)`` 1.0 where the predicted means ``prediction[:, :2]`` fall in the quadrant of
    ``truth[:, :2]`` (both ``(songs, >= 2)``: valence mean, arousal mean first), else 0.0."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    return (quadrant_of(truth[:, 0], truth[:, 1])
            == quadrant_of(prediction[:, 0], prediction[:, 1])).astype(np.float64)


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (nan, nan) for n = 0.
    ``successes`` may be fractional (a sum of per-song hit rates, each song counted once)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclasses.dataclass(frozen=True)
class QuadrantScores:
    """``confusion[t, p]``: songs of true quadrant t predicted p; ``recall[q]``: share of
    quadrant q's songs predicted q (nan without songs of q)."""

    n: int
    correct: int
    accuracy: float
    interval: tuple[float, float]
    recall: np.ndarray
    confusion: np.ndarray

    def describe(self) -> str:
        lo, hi = self.interval
        recall = ", ".join(f"{q} {r:.0%}" for q, r in zip(QUADRANTS, self.recall))
        return (f"quadrant accuracy {self.accuracy:.1%} (95% CI {lo:.1%}-{hi:.1%}, {self.n} "
                f"songs, chance 25%); recall {recall}")


def score(true: np.ndarray, predicted: np.ndarray) -> QuadrantScores:
    """Scores of predicted quadrant indices against the true ones (both (N,) ints 0-3)."""
    true, predicted = np.asarray(true, int), np.asarray(predicted, int)
    if true.shape != predicted.shape or true.ndim != 1:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} must be equal (N,)")
    if true.size and not (np.isin(true, range(4)).all() and np.isin(predicted, range(4)).all()):
        raise ValueError("quadrant indices must be 0-3")
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (true, predicted), 1)
    correct = int(np.trace(confusion))
    per_quadrant = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(confusion) / per_quadrant
    n = int(true.size)
    return QuadrantScores(n, correct, correct / n if n else math.nan,
                          wilson_interval(correct, n), recall, confusion)


def constant_quadrant(true: np.ndarray) -> int:
    """The constant baseline's answer: the most frequent of the quadrant indices ``true`` (the
    lowest index on ties). Taken over the evaluated songs themselves it is the best constant in
    hindsight (25% on a balanced set); the evaluation uses it so (``mer_jax.evaluate``)."""
    return int(np.argmax(np.bincount(np.asarray(true, int), minlength=4)))


def true_quadrants(tables) -> dict[str, int]:
    """song id -> its true quadrant index, over all the tables (IterationTables)."""
    return {song: int(quadrant_of(row[0], row[1]))
            for table in tables for song, row in zip(table.song_ids, table.truth)}


def scores_row(iteration, name: str, hit_rates: np.ndarray, true: np.ndarray) -> dict[str, object]:
    """A quadrants.csv row from per-song hit rates ``(songs,)`` and true quadrants ``(songs,)``."""
    low, high = wilson_interval(float(hit_rates.sum()), hit_rates.size)
    row = {"iteration": iteration, "input": name, "songs": int(hit_rates.size),
           "accuracy": float(hit_rates.mean()), "ci_low": low, "ci_high": high}
    for q, label in enumerate(QUADRANTS):
        mine = hit_rates[true == q]
        row[f"recall_{label}"] = float(mine.mean()) if mine.size else math.nan
    return row


def format_pooled(rows: list[dict[str, object]]) -> str:
    """The pooled quadrant rows as printed text (accuracy, Wilson 95% interval, recall)."""
    lines = [f"{'input':>8} {'songs':>5} {'accuracy':>8} {'95% CI':>13}  "
             + " ".join(f"{q:>4}" for q in QUADRANTS) + "   (recall; chance 25%)"]
    for r in rows:
        if r["iteration"] == "pooled":
            lines.append(f"{r['input']:>8} {r['songs']:>5} {r['accuracy']:>8.1%} "
                         f"{r['ci_low']:>6.1%}-{r['ci_high']:<6.1%}  " + " ".join(
                             f"{r[f'recall_{q}']:>4.0%}" for q in QUADRANTS))
    return "\n".join(lines)
