"""The experiment's report: the paper's Tables 1-2 and Figures 2-4, regression metrics, corrected
and pooled tests, and a conclusion computed from the numbers.

Every table has baseline rows (constant and calibrated constant, :mod:`mer_jax.baselines`); each
model passes or fails the skill gate, and the mixed-vs-sep verdict is given only when both inputs'
models learned (:mod:`mer_jax.verdict`: per-song pooled tests, effect size with a bootstrap
interval, spread over seeds, Nadeau-Bengio). The per-iteration Wilcoxon p of the paper is kept,
Holm-corrected over the iterations. On a quadrant-labelled dataset (4Q) the gate and the verdict
use quadrant accuracy, and the report shows it (Wilson interval, recall, confusion) beside the
constant quadrant's.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from mer_jax import plots, stats
from mer_jax import verdict as verdict_lib
from mer_jax.data.songs import LABEL_NAMES
from mer_jax.evaluate import Evaluation
from mer_jax.files import write_csv, write_text
from mer_jax.quadrants import QUADRANTS

ALPHA = verdict_lib.ALPHA
CORRELATION_TEXT = (
    "Pearson r over songs of the predicted means, pooled (each song's prediction averaged over "
    "the seeds and iterations that tested it), beside the constant baseline's r pooled the same "
    "way. The constant's r is not 0 but typically negative: each iteration's constant is its "
    "training songs' mean, which moves against the labels of the songs held out, and a model's r "
    "carries whatever part of its prediction follows its training mean. r partial: the partial "
    "correlation of prediction and label given the constant's prediction (about 0 for a model "
    "that adds only noise to its training mean); a model's r counts only where the partial r's "
    "95% interval lies above 0:")


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    name: str
    mean_kl: dict[str, float]              # input -> mean of E over iterations
    wins: dict[str, int]                   # input -> iterations where its E is lower
    p_values: np.ndarray                   # per iteration
    holm: np.ndarray
    skills: dict                           # input -> verdict.Skill / QuadrantSkill (empty:
                                           # no baselines known)
    comparison: verdict_lib.Comparison | None

    @property
    def verdict(self) -> str:
        if not self.skills:
            return "no verdict: the baselines are unknown, so whether the models learned is too"
        return verdict_lib.verdict(self.skills, self.comparison)


def summarize(name: str, evaluation: Evaluation) -> ModelSummary:
    rows = evaluation.stats_rows
    inputs = [m for m in ("mixed", "sep") if all(m in kl for kl in evaluation.kl.values())]
    p = np.array([r["W_mixed_sep"] for r in rows], dtype=np.float64)
    mean_kl = {m: float(np.mean([r[f"E_{m}"] for r in rows])) for m in inputs}
    wins = {"mixed": sum(r["E_mixed"] < r["E_sep"] for r in rows),
            "sep": sum(r["E_sep"] < r["E_mixed"] for r in rows)}
    skills = {m: verdict_lib.gate(evaluation, m) for m in inputs} \
        if evaluation.baseline_kl or evaluation.categorical else {}
    comparison = verdict_lib.compare(evaluation) if len(inputs) == 2 else None
    return ModelSummary(name, mean_kl, wins, p, stats.holm(p), skills, comparison)


def _skill_text(skill) -> str:
    state = "learned" if skill.learned else "did not learn"
    if isinstance(skill, verdict_lib.QuadrantSkill):
        low, high = skill.interval
        return (f"{skill.input} {state} (quadrant accuracy {skill.accuracy:.1%}, 95% CI "
                f"{low:.1%}-{high:.1%}, vs the constant quadrant {skill.accuracy_constant:.1%}; "
                f"one-sided p = {skill.p:.2g} over {skill.songs} songs)")
    return (f"{skill.input} {state} (mean KL {skill.mean_kl:.3f} vs calibrated constant "
            f"{skill.mean_kl_calibrated:.3f}, constant {skill.mean_kl_constant:.3f}; one-sided "
            f"p = {skill.p:.2g} over {skill.songs} songs)")


def conclusion(summary: ModelSummary) -> str:
    n = len(summary.p_values)
    significant = int(np.sum(summary.p_values < ALPHA))
    after_holm = int(np.sum(summary.holm < ALPHA))
    text = [f"**{summary.name}**: mean KL " + " vs ".join(
        f"{v:.3f} ({m})" for m, v in summary.mean_kl.items()) + "."]
    if summary.skills:
        text.append("Skill gate: " + "; ".join(_skill_text(s) for s in summary.skills.values())
                    + ".")
    c = summary.comparison
    if c is not None:
        seeds = list(c.seed_effects.values())
        text.append(
            f"Mixed vs sep over {c.songs} songs ({c.measure} per song averaged over seeds and "
            f"iterations): rank-biserial r = {c.effect:+.2f} (95% bootstrap CI "
            f"{c.interval[0]:+.2f} to {c.interval[1]:+.2f}; r > 0: sep lower), Hodges-Lehmann "
            f"shift of {c.measure} mixed - sep {c.shift:+.3f}, Wilcoxon p = {c.p:.3g}; sep "
            f"lower in {sum(r > 0 for r in seeds)}/{len(seeds)} seeds, mixed in "
            f"{sum(r < 0 for r in seeds)}/{len(seeds)}; Nadeau-Bengio corrected t-test over "
            f"iterations p = {c.nadeau_bengio_p:.3g}. Per iteration (mean KL, the paper's "
            f"test): mixed lower in {summary.wins['mixed']}/{n}, sep in "
            f"{summary.wins['sep']}/{n}; significant "
            f"(Wilcoxon p < {ALPHA}) in {significant}/{n}, {after_holm}/{n} after Holm.")
    text.append(f"Verdict: {summary.verdict}.")
    return " ".join(text)


def _markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(rows_k) + " |" for rows_k in rows]
    return "\n".join(lines)


def _stats_markdown(summary: ModelSummary, evaluation: Evaluation) -> str:
    """Per-iteration rows, then the model's mean and a row per baseline (mean over iterations)."""
    rows = []
    for k, r in enumerate(evaluation.stats_rows):
        rows.append([str(r["iteration"])] + [_num(r[h]) for h in stats.STATS_HEADER[1:]]
                    + [_num(summary.holm[k])])
    mean = {h: np.mean([r[h] for r in evaluation.stats_rows]) for h in stats.STATS_HEADER[1:5]}
    rows.append(["mean (model)"] + [_num(mean[h]) for h in stats.STATS_HEADER[1:5]] + ["", ""])
    for name in ("constant", "calibrated"):
        if evaluation.baseline_kl:
            e = np.mean([np.mean(b[name]) for b in evaluation.baseline_kl.values()])
            m = np.mean([stats.median(b[name], evaluation.median_convention)
                         for b in evaluation.baseline_kl.values()])
            rows.append([f"{name} baseline"] + [_num(e), _num(e), _num(m), _num(m), "", ""])
    return _markdown_table(["iteration", "E_mixed", "E_sep", "M_mixed", "M_sep", "W_mixed_sep",
                            "W (Holm)"], rows)


def _num(value) -> str:
    return f"{value:.3f}" if np.isfinite(value) else ""


def _skill_markdown(summary: ModelSummary) -> str:
    if any(isinstance(s, verdict_lib.QuadrantSkill) for s in summary.skills.values()):
        rows = [[s.input, f"{s.accuracy:.1%} ({s.interval[0]:.1%}-{s.interval[1]:.1%})",
                 f"{min(s.seed_accuracy.values()):.1%}-{max(s.seed_accuracy.values()):.1%}",
                 f"{s.accuracy_constant:.1%}", f"{s.p:.2g}",
                 "learned" if s.learned else "**did not learn**"]
                for s in summary.skills.values()]
        return _markdown_table(["input", "quadrant accuracy (95% CI)", "range over seeds",
                                "constant quadrant", "p (one-sided)", "skill gate"], rows)
    rows = [[s.input, f"{s.mean_kl:.3f}", f"{s.mean_kl_constant:.3f}",
             f"{s.mean_kl_calibrated:.3f}", f"{s.median_gain:+.3f}", f"{s.p:.2g}",
             "learned" if s.learned else "**did not learn**"] for s in summary.skills.values()]
    return _markdown_table(["input", "KL model", "KL constant", "KL calibrated",
                            "median gain vs calibrated", "p (one-sided)", "skill gate"], rows)


def _collapsed_markdown(evaluation: Evaluation, summary: ModelSummary) -> str:
    """A paragraph naming the collapsed models (``verdict.collapsed_models``), or ""."""
    named = []
    for name in summary.mean_kl:
        for seed, iteration in verdict_lib.collapsed_models(evaluation, name):
            named.append(f"{name} " + (f"seed {seed} " if seed is not None else "")
                         + f"iteration {iteration}")
    if not named:
        return ""
    total = sum(name in t.predictions for t in evaluation.tables for name in summary.mean_kl)
    return (f"**Collapsed models** ({len(named)} of {total}: predicted means varying by less than "
            f"{verdict_lib.COLLAPSE_SPREAD:g} over their test songs, one prediction for every "
            f"song; included in every figure above): {', '.join(named)}.\n\n")


def _seed_markdown(evaluation: Evaluation, summary: ModelSummary) -> str:
    rows = []
    for seed in evaluation.seeds:
        kl = evaluation.kl_by_seed[seed]
        effect = summary.comparison.seed_effects.get(seed) if summary.comparison else None
        rows.append([str(seed if seed is not None else "-")]
                    + [f"{np.mean([np.mean(v[m]) for v in kl.values()]):.3f}"
                       for m in summary.mean_kl]
                    + ([f"{effect:+.2f}"] if effect is not None else []))
    header = ["seed", *(f"E_{m}" for m in summary.mean_kl)]
    return _markdown_table(header + (["r (mixed - sep)"] if summary.comparison else []), rows)


def _constant_rmse(evaluation: Evaluation) -> np.ndarray:
    """``(4,)``: the constant baseline's RMSE per label, mean over iterations (NaN: unknown)."""
    if not evaluation.constant_means:
        return np.full(len(LABEL_NAMES), np.nan)
    truth = {t.iteration: t.truth for t in evaluation.tables}
    return np.mean([stats.rmse(truth[it], np.broadcast_to(row, truth[it].shape))
                    for it, row in evaluation.constant_means.items()], axis=0)


def _metrics_markdown(evaluation: Evaluation) -> str:
    constant = dict(zip(LABEL_NAMES, _constant_rmse(evaluation)))
    rows = [[r["input"], r["dimension"], f"{r['rmse']:.3f}", _num(constant[r["dimension"]]),
             f"{r['pearson_r']:.3f}"]
            for r in evaluation.metrics_rows if r["iteration"] == "mean"]
    return _markdown_table(["input", "dimension", "RMSE", "RMSE constant", "Pearson r"], rows)


def _correlation_markdown(evaluation: Evaluation, inputs) -> str:
    """Pooled r per input and dimension beside its yardsticks (``verdict.correlation``)."""
    rows = []
    for name in inputs:
        c = verdict_lib.correlation(evaluation, name)
        for d, dimension in enumerate(LABEL_NAMES[:2]):
            rows.append([name, dimension, _with_interval(c.r[d], c.interval[d]),
                         _signed(c.r_constant[d]),
                         _with_interval(c.r_partial[d], c.interval_partial[d]), _above(c, d)])
    return _markdown_table(["input", "dimension", "r (95% CI)", "r constant",
                            "r partial (95% CI)", "above the constant"], rows)


def _with_interval(r: float, interval) -> str:
    if not np.isfinite(r) or not np.isfinite(interval[0]):
        return _signed(r)
    return f"{_signed(r)} ({_signed(interval[0])} to {_signed(interval[1])})"


def _above(c: verdict_lib.Correlation, d: int) -> str:
    if c.above_constant[d]:
        return "yes"
    return "**no**" if np.isfinite(c.r_constant[d]) else ""


def _signed(value) -> str:
    return f"{value:+.2f}" if np.isfinite(value) else ""


def _gate_rule(evaluation: Evaluation) -> str:
    if evaluation.categorical:
        return ("per-song quadrant hit rate over seeds and iterations, one-sided binomial test "
                "over songs against the best constant quadrant's accuracy")
    return ("per-song KL averaged over seeds and iterations, one-sided Wilcoxon against the "
            "calibrated constant")


def _quadrant_markdown(evaluation: Evaluation) -> str:
    """Pooled quadrant accuracy and recall per input and baseline, then the confusion counts."""
    rows = [[r["input"], str(r["songs"]), f"{r['accuracy']:.1%}",
             f"{r['ci_low']:.1%}-{r['ci_high']:.1%}",
             *(f"{r[f'recall_{q}']:.0%}" for q in QUADRANTS)]
            for r in evaluation.quadrant_rows if r["iteration"] == "pooled"]
    text = [_markdown_table(["input", "songs", "accuracy", "95% CI (Wilson)",
                             *(f"recall {q}" for q in QUADRANTS)], rows)]
    for name, counts in evaluation.confusion.items():
        text.append(f"Confusion, {name} (rows: true quadrant, columns: predicted; every test "
                    f"prediction):\n\n" + _markdown_table(
                        ["true", *QUADRANTS], [[q, *map(str, counts[t])]
                                               for t, q in enumerate(QUADRANTS)]))
    return "\n\n".join(text)


def write_report(out: os.PathLike | str, evaluations: dict[str, Evaluation],
                 loss_figures: dict[str, Path], title: str, notes: list[str]) -> Path:
    """``evaluations``: {"CRNN": ..., "RF": ...}; ``loss_figures``: {"mixed": png, "sep": png}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = {"CRNN": ("table1_crnn.csv", "Table 1"), "RF": ("table2_rf.csv", "Table 2")}
    sections, conclusions = [], []
    for model, evaluation in evaluations.items():
        csv_name, label = names[model]
        write_csv(out / csv_name, stats.STATS_HEADER, evaluation.stats_rows)
        figure = f"figure4_kl_histograms_{model.lower()}.png"
        plots.kl_histograms(evaluation.kl, out / figure,
                            title=f"{model}: KL divergence per song, mixed vs sep")
        summary = summarize(model, evaluation)
        conclusions.append(conclusion(summary))
        skill = (f"Skill gate ({_gate_rule(evaluation)}):\n\n{_skill_markdown(summary)}\n\n"
                 if summary.skills else "")
        skill += _collapsed_markdown(evaluation, summary)
        if evaluation.categorical:
            skill += ("Quadrant accuracy (each song once: its hit rate over the seeds and "
                      "iterations that tested it; chance 25%):\n\n"
                      f"{_quadrant_markdown(evaluation)}\n\n")
        sections.append(f"## {label}: {model} (`{csv_name}`, median: "
                        f"{evaluation.median_convention})\n\n{_stats_markdown(summary, evaluation)}"
                        f"\n\n{skill}Mean KL per model seed:\n\n"
                        f"{_seed_markdown(evaluation, summary)}"
                        f"\n\nRMSE and Pearson r (mean over iterations; within an "
                        f"iteration the constant's r is undefined):\n\n"
                        f"{_metrics_markdown(evaluation)}\n\n{CORRELATION_TEXT}\n\n"
                        f"{_correlation_markdown(evaluation, summary.mean_kl)}\n\n"
                        f"![Figure 4, {model}]({figure})\n")
    figures = []
    for number, mode in ((2, "mixed"), (3, "sep")):
        if mode in loss_figures and Path(loss_figures[mode]).is_file():
            name = f"figure{number}_crnn_loss_{mode}.png"
            shutil.copyfile(loss_figures[mode], out / name)
            figures.append(f"![Figure {number}: CRNN loss, {mode}]({name})")
    text = [f"# {title}", "", "## Conclusion", "", *[f"- {c}" for c in conclusions], "",
            *sections, "## Figures 2-3: CRNN training and validation loss", "", *figures, "",
            "## Notes", "", *[f"- {n}" for n in notes], ""]
    write_text(out / "report.md", "\n".join(text))
    return out / "report.md"
