"""The skill gate and the mixed-vs-sep verdict: statistics over songs, seeds and iterations.

Monte-Carlo test sets overlap, so every pooled test treats each song once: a song's statistic is
its KL averaged over the seeds and over the iterations that tested it.

* **Skill gate.** An input's model *learned* only if its per-song KL is significantly lower than
  the calibrated constant's (one-sided paired Wilcoxon signed-rank test over songs, p < 0.05).
* **Verdict.** Given only when the models of both inputs learned. Per song, d = KL_mixed - KL_sep;
  two-sided Wilcoxon test of d over songs. Its direction comes from the same ranks: the
  matched-pairs rank-biserial correlation r = (T+ - T-) / (T+ + T-) (r > 0: sep's KL is lower),
  with a 95% percentile bootstrap interval over songs; the Hodges-Lehmann estimate of the shift
  (median of the Walsh averages of d) gives it in KL units.
* **Quadrant-labelled datasets** (``evaluation.categorical``, e.g. 4Q): the per-song KL against
  quadrant-centre proxies is no measure of skill, so the gate and the verdict use each song's
  quadrant miss rate (1 - the share of its seeds' and iterations' predictions that fall in its
  quadrant) in place of its KL: a model learned only if its accuracy is significantly above the
  best constant's, the evaluated songs' most frequent quadrant (one-sided binomial test over songs,
  each song counted once; conservative, since a song's hit rate - the mean of its predictions'
  hits - varies no more than one Bernoulli trial), and the verdict compares mixed and sep by the
  same paired tests as for KL, on the per-song miss rates.
* **Collapsed models.** A model whose predicted valence and arousal means vary by less than
  ``COLLAPSE_SPREAD`` over its test songs (standard deviation, 0-1 scale) predicts one value for
  every song: a training failure (signal lost in dead ReLUs) that pooled figures average in. The
  report names each one.
* **Correlation.** Pearson r over songs of the predicted means, pooled like the gate's KL, is
  shown beside the constant baseline's r pooled the same way, which is typically negative
  (``correlation``); a model's r counts only where its partial r given the constant's
  prediction (the training mean) is significantly above 0 (Fisher 95% interval over songs).
* **Spread.** The same statistic per seed (in how many seeds each direction wins), and the
  Nadeau-Bengio corrected resampled t-test over the iterations' mean KL differences, which
  accounts for overlapping training sets (Nadeau & Bengio 2003, Machine Learning 52).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.stats

from mer_jax import quadrants, stats
from mer_jax.data.songs import LABEL_NAMES

ALPHA = 0.05
BOOTSTRAP = 2000
COLLAPSE_SPREAD = 1e-3
# the predicted means, a Correlation's (2,) axes: "valence", "arousal" (from LABEL_NAMES)
DIMENSIONS = tuple(name.removesuffix("_mean") for name in LABEL_NAMES[:2])


def collapsed_models(evaluation, name: str) -> list[tuple[int | None, int]]:
    """(seed, iteration) of each of input ``name``'s models whose predicted means (valence and
    arousal alike) have a standard deviation over its test songs below ``COLLAPSE_SPREAD``."""
    found = [(t.seed, t.iteration) for t in evaluation.tables if name in t.predictions
             and np.all(t.predictions[name][:, :2].std(axis=0) < COLLAPSE_SPREAD)]
    return sorted(found, key=lambda m: (-1 if m[0] is None else m[0], m[1]))


def per_song(kl_by_iteration: dict[int, np.ndarray], songs: dict[int, tuple[str, ...]]
             ) -> dict[str, float]:
    """Each song's mean over the iterations that tested it: {iteration: (songs,)} -> {song: v}."""
    values: dict[str, list[float]] = {}
    for iteration, kl in kl_by_iteration.items():
        for song, value in zip(songs[iteration], kl):
            values.setdefault(song, []).append(float(value))
    return {song: float(np.mean(v)) for song, v in values.items()}


def _paired(a: dict[str, float], b: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    songs = sorted(set(a) & set(b))
    return np.array([a[s] for s in songs]), np.array([b[s] for s in songs])


def rank_biserial(d: np.ndarray) -> np.ndarray:
    """Matched-pairs rank-biserial correlation of differences ``(..., n)`` -> ``(...)``: ranks of
    |d| (ties averaged), r = sum(sign(d) rank) / sum(rank); 0 for all-zero differences."""
    d = np.asarray(d, np.float64)
    ranks = scipy.stats.rankdata(np.abs(d), axis=-1)
    ranks = np.where(d == 0, 0.0, ranks)
    total = ranks.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.sign(d) * ranks).sum(axis=-1) / total, 0.0)


def hodges_lehmann(d: np.ndarray) -> float:
    """Median of the Walsh averages (d_i + d_j) / 2, i <= j: the shift the Wilcoxon test sees."""
    d = np.asarray(d, np.float64)
    i, j = np.triu_indices(d.size)
    return float(np.median((d[i] + d[j]) / 2)) if d.size else float("nan")


def bootstrap_interval(d: np.ndarray, seed: int = 0, draws: int = BOOTSTRAP
                       ) -> tuple[float, float]:
    """95% percentile interval of the rank-biserial r, resampling songs (fixed seed)."""
    if d.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = rank_biserial(d[rng.integers(0, d.size, (draws, d.size))])
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def nadeau_bengio(differences: np.ndarray, test_size: float, train_size: float) -> float:
    """Two-sided p of the corrected resampled t-test over J Monte-Carlo iterations:
    t = mean / sqrt((1 / J + n_test / n_train) var), J - 1 degrees of freedom."""
    x = np.asarray(differences, np.float64)
    if x.size < 2 or not train_size:
        return float("nan")
    variance = x.var(ddof=1) * (1 / x.size + test_size / train_size)
    if variance <= 0:
        return float("nan")
    t = x.mean() / math.sqrt(variance)
    return float(2 * scipy.stats.t.sf(abs(t), x.size - 1))


def _pooled(evaluation, rows) -> tuple[np.ndarray, np.ndarray]:
    """Labels and each song's mean of ``rows(table)`` ``(songs, 4)`` over the tables (seeds and
    iterations) that tested it: ``(n, 4)`` x2, one row per song."""
    sums: dict[str, list] = {}
    for table in evaluation.tables:
        for song, truth, row in zip(table.song_ids, table.truth, rows(table)):
            entry = sums.setdefault(song, [truth, np.zeros(4), 0])
            entry[1] = entry[1] + row
            entry[2] += 1
    return (np.array([v[0] for v in sums.values()]),
            np.array([v[1] / v[2] for v in sums.values()]))


@dataclasses.dataclass(frozen=True)
class Correlation:
    """Pearson r over songs of one input's predicted valence and arousal means, each song's
    prediction averaged over the seeds and iterations that tested it, with its yardsticks. Arrays
    are ``(2,)`` (valence, arousal) or ``(2, 2)`` (their Fisher 95% intervals); NaN where unknown
    (no training labels) or undefined (a prediction that does not vary, or only with the
    training mean)."""
    input: str
    songs: int
    r: np.ndarray
    interval: np.ndarray
    r_constant: np.ndarray         # the constant baseline's r, pooled the same way
    r_partial: np.ndarray          # partial r of prediction and label given the constant's
    interval_partial: np.ndarray

    @property
    def above_constant(self) -> np.ndarray:
        """``(2,)`` bool: the partial r's interval lies above 0."""
        return np.nan_to_num(self.interval_partial[:, 0], nan=-1.0) > 0

    def describe(self) -> str:
        """One line: per predicted mean, r, the partial r with its interval and whether it is
        above the constant, and the constant's r."""
        parts = []
        for d, dim in enumerate(DIMENSIONS):
            if not np.isfinite(self.r[d]):
                parts.append(f"{dim} r undefined (the predictions do not vary)")
                continue
            if not np.isfinite(self.r_constant[d]):
                parts.append(f"{dim} r {self.r[d]:+.2f} (no yardstick: training labels unknown)")
                continue
            low, high = self.interval_partial[d]
            partial = (f"partial {self.r_partial[d]:+.2f} ({low:+.2f} to {high:+.2f}"
                       if np.isfinite(low) else "partial undefined (it follows the training mean")
            parts.append(f"{dim} r {self.r[d]:+.2f}, {partial}: "
                         f"{'above' if self.above_constant[d] else 'not above'} the constant, "
                         f"r {self.r_constant[d]:+.2f})")
        return f"pooled over {self.songs} songs, " + "; ".join(parts)


def correlation(evaluation, name: str) -> Correlation:
    """Input ``name``'s pooled r and its yardsticks. The constant's pooled r is not 0: each
    iteration's constant is its training songs' mean, which moves against the labels of the songs
    held out, so pooled over Monte-Carlo iterations it anti-correlates with them (the more, the
    fewer the songs), and a model's pooled r carries whatever part of its prediction follows its
    training mean. Comparing r with the constant's would credit noise (which dilutes the
    anti-correlation towards 0), so skill is read from the partial r of prediction and label given
    the constant's prediction (pooled the same way): about 0 for a model that adds only noise to
    its training mean, and about r for one that ignores it; it counts where its Fisher interval
    lies above 0. Where every iteration's constant is the same (splits stratified on quadrant
    labels), the constant's r is taken as 0 and the partial r equals r."""
    truth, model = (a[:, :2] for a in _pooled(evaluation, lambda t: t.predictions[name]))
    r, n = stats.pearson_r(truth, model), len(truth)
    constant_r = partial = np.full(2, np.nan)
    if evaluation.constant_means:
        _, constant = _pooled(evaluation, lambda t: np.broadcast_to(
            evaluation.constant_means[t.iteration], t.truth.shape))
        constant_r = np.nan_to_num(stats.pearson_r(truth, constant[:, :2]), nan=0.0)
        partial = stats.partial_r(r, constant_r, np.nan_to_num(
            stats.pearson_r(model, constant[:, :2]), nan=0.0))
    return Correlation(name, n, r, _fisher(r, n), constant_r, partial, _fisher(partial, n, 1))


def _fisher(r: np.ndarray, n: int, controls: int = 0) -> np.ndarray:
    return np.array([stats.pearson_interval(v, n, controls=controls) for v in r])


@dataclasses.dataclass(frozen=True)
class Skill:
    """The skill gate of one input's model."""
    input: str
    learned: bool
    p: float                       # one-sided Wilcoxon p: model KL < calibrated constant's
    songs: int
    mean_kl: float                 # mean over songs of the per-song KL
    mean_kl_constant: float
    mean_kl_calibrated: float
    median_gain: float             # median over songs of (calibrated - model) KL
    p_constant: float              # one-sided Wilcoxon p: model KL < the constant's

    @property
    def beats_constant(self) -> bool:
        return bool(np.isfinite(self.p_constant) and self.p_constant < ALPHA)


def skill(evaluation, name: str) -> Skill:
    """Gate ``name``'s ("mixed" / "sep") model of an Evaluation that has baselines."""
    songs = evaluation.songs
    model = per_song({it: kl[name] for it, kl in evaluation.kl.items()}, songs)
    calibrated = per_song({it: b["calibrated"] for it, b in evaluation.baseline_kl.items()}, songs)
    constant = per_song({it: b["constant"] for it, b in evaluation.baseline_kl.items()}, songs)
    a, b = _paired(model, calibrated)
    _, c = _paired(model, constant)
    p = stats.wilcoxon_p(a, b, "less")
    return Skill(name, bool(np.isfinite(p) and p < ALPHA), p, a.size, float(a.mean()),
                 float(c.mean()), float(b.mean()), float(np.median(b - a)),
                 stats.wilcoxon_p(a, c, "less"))


@dataclasses.dataclass(frozen=True)
class QuadrantSkill:
    """The skill gate of one input's model on a quadrant-labelled dataset."""
    input: str
    learned: bool
    p: float                       # one-sided binomial p: accuracy > the constant's
    songs: int
    accuracy: float                # mean over songs of the per-song hit rate
    interval: tuple[float, float]  # Wilson 95% over songs
    accuracy_constant: float
    seed_accuracy: dict            # seed -> accuracy of that seed's models


def quadrant_skill(evaluation, name: str) -> QuadrantSkill:
    """Gate ``name``'s model of a categorical Evaluation (module docstring)."""
    songs = evaluation.songs
    model = per_song({it: h[name] for it, h in evaluation.hits.items()}, songs)
    constant = per_song({it: b["constant"] for it, b in evaluation.baseline_hits.items()}, songs)
    a, b = _paired(model, constant)
    p = float(scipy.stats.binomtest(int(round(a.sum())), a.size, float(b.mean()),
                                    alternative="greater").pvalue) if 0 < b.mean() < 1 else math.nan
    seeds = {seed: float(np.mean(list(per_song({it: h[name] for it, h in hits.items()},
                                               songs).values())))
             for seed, hits in evaluation.hits_by_seed.items()}
    return QuadrantSkill(name, bool(np.isfinite(p) and p < ALPHA), p, a.size, float(a.mean()),
                         quadrants.wilson_interval(float(a.sum()), a.size), float(b.mean()),
                         seeds)


def gate(evaluation, name: str) -> Skill | QuadrantSkill:
    """The skill gate that fits the evaluation: quadrant accuracy for a categorical one."""
    return quadrant_skill(evaluation, name) if evaluation.categorical else skill(evaluation, name)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Mixed vs sep over songs (d = KL_mixed - KL_sep per song, seeds and iterations averaged)."""
    songs: int
    p: float                       # two-sided Wilcoxon over songs
    effect: float                  # rank-biserial r (> 0: sep lower)
    interval: tuple[float, float]  # its 95% bootstrap interval over songs
    shift: float                   # Hodges-Lehmann estimate of d
    seed_effects: dict             # seed -> rank-biserial r of that seed's per-song d
    nadeau_bengio_p: float
    measure: str = "KL"            # or "quadrant miss rate" (categorical datasets)

    @property
    def better(self) -> str | None:
        """The input with the lower per-song loss if the difference is significant, else None."""
        if not np.isfinite(self.p) or self.p >= ALPHA or self.effect == 0:
            return None
        return "sep" if self.effect > 0 else "mixed"


def _differences(kl_by_iteration, songs) -> np.ndarray:
    mixed = per_song({it: kl["mixed"] for it, kl in kl_by_iteration.items()}, songs)
    sep = per_song({it: kl["sep"] for it, kl in kl_by_iteration.items()}, songs)
    a, b = _paired(mixed, sep)
    return a - b


def _misses(hits_by_iteration: dict) -> dict:
    return {it: {name: 1 - h for name, h in hits.items()} for it, hits in hits_by_iteration.items()}


def compare(evaluation) -> Comparison:
    """Mixed vs sep of an Evaluation holding both inputs (module docstring)."""
    if evaluation.categorical:
        loss = _misses(evaluation.hits)
        loss_by_seed = {seed: _misses(h) for seed, h in evaluation.hits_by_seed.items()}
    else:
        loss, loss_by_seed = evaluation.kl, evaluation.kl_by_seed
    d = _differences(loss, evaluation.songs)
    p = stats.wilcoxon_p(d, np.zeros_like(d))
    seed_effects = {seed: float(rank_biserial(_differences(values, evaluation.songs)))
                    for seed, values in loss_by_seed.items()}
    per_iteration = [float(np.mean(v["mixed"] - v["sep"])) for v in loss.values()]
    test_size = float(np.mean([len(s) for s in evaluation.songs.values()]))
    train_size = float(np.mean(list(evaluation.train_sizes.values()))) \
        if evaluation.train_sizes else 0.0
    return Comparison(d.size, p, float(rank_biserial(d)), bootstrap_interval(d),
                      hodges_lehmann(d), seed_effects,
                      nadeau_bengio(np.array(per_iteration), test_size, train_size),
                      "quadrant miss rate" if evaluation.categorical else "KL")


def verdict(skills: dict, comparison: Comparison | None) -> str:
    """One line; contains "did not learn" whenever a model failed the gate (then no verdict)."""
    failed = [name for name, s in skills.items() if not s.learned]
    categorical = any(isinstance(s, QuadrantSkill) for s in skills.values())
    if failed:
        why = ("quadrant accuracy not significantly above the constant quadrant's" if categorical
               else "per-song KL not significantly below the calibrated constant's")
        return (f"no verdict: the {' and '.join(failed)} model{'s' if len(failed) > 1 else ''} "
                f"did not learn ({why})")
    if comparison is None or comparison.better is None:
        return "no significant difference between mixed and sep"
    if comparison.measure != "KL":
        return f"{comparison.better} predicts the quadrants better (higher per-song accuracy)"
    return f"{comparison.better} predicts the emotion distributions better (lower per-song KL)"
