"""The experiment's report: the paper's Tables 1-2 and Figures 2-4, regression metrics, corrected
and pooled tests, and a conclusion computed from the numbers.

Tests: the paired Wilcoxon p of each iteration (as the paper), Holm-corrected over the iterations;
and a pooled test over iterations. Monte-Carlo test sets overlap, so the pooled test treats each
song once: its KL difference (mixed - sep) is averaged over the iterations that tested it, and the
Wilcoxon signed-rank test is applied to those per-song means.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from mer_jax import plots, stats
from mer_jax.evaluate import Evaluation, write_csv

ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    name: str
    mean_kl: dict[str, float]              # input -> mean of E over iterations
    wins: dict[str, int]                   # input -> iterations where its E is lower
    p_values: np.ndarray                   # per iteration
    holm: np.ndarray
    pooled_p: float
    pooled_songs: int
    pooled_median_difference: float        # median over songs of mean(KL_mixed - KL_sep)

    @property
    def verdict(self) -> str:
        if not np.isfinite(self.pooled_p) or self.pooled_p >= ALPHA:
            return "no significant difference between mixed and sep"
        winner = "mixed" if self.mean_kl["mixed"] < self.mean_kl["sep"] else "sep"
        return f"{winner} predicts the emotion distributions better (lower KL)"


def pooled_song_test(evaluation: Evaluation) -> tuple[float, int, float]:
    """(p, songs, median difference) of the per-song pooled Wilcoxon test (module docstring)."""
    differences: dict[str, list[float]] = {}
    for table in evaluation.tables:
        kl = evaluation.kl[table.iteration]
        for k, song in enumerate(table.song_ids):
            differences.setdefault(song, []).append(kl["mixed"][k] - kl["sep"][k])
    per_song = np.array([np.mean(v) for v in differences.values()])
    return stats.wilcoxon_p(per_song, np.zeros_like(per_song)), per_song.size, \
        float(np.median(per_song)) if per_song.size else float("nan")


def summarize(name: str, evaluation: Evaluation) -> ModelSummary:
    rows = evaluation.stats_rows
    p = np.array([r["W_mixed_sep"] for r in rows], dtype=np.float64)
    mean_kl = {m: float(np.mean([r[f"E_{m}"] for r in rows])) for m in ("mixed", "sep")}
    wins = {"mixed": sum(r["E_mixed"] < r["E_sep"] for r in rows),
            "sep": sum(r["E_sep"] < r["E_mixed"] for r in rows)}
    pooled_p, songs, median_difference = pooled_song_test(evaluation)
    return ModelSummary(name, mean_kl, wins, p, stats.holm(p), pooled_p, songs, median_difference)


def conclusion(summary: ModelSummary) -> str:
    n = len(summary.p_values)
    significant = int(np.sum(summary.p_values < ALPHA))
    after_holm = int(np.sum(summary.holm < ALPHA))
    return (f"**{summary.name}**: mean KL {summary.mean_kl['mixed']:.3f} (mixed) vs "
            f"{summary.mean_kl['sep']:.3f} (sep); mixed is lower in {summary.wins['mixed']}/{n} "
            f"iterations, sep in {summary.wins['sep']}/{n}. The difference is significant "
            f"(Wilcoxon p < {ALPHA}) in {significant}/{n} iterations, {after_holm}/{n} after Holm "
            f"correction; pooled over iterations ({summary.pooled_songs} songs, median per-song "
            f"KL difference mixed - sep = {summary.pooled_median_difference:+.3f}): "
            f"p = {summary.pooled_p:.3g}. Verdict: {summary.verdict}.")


def _markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(rows_k) + " |" for rows_k in rows]
    return "\n".join(lines)


def _stats_markdown(summary: ModelSummary, evaluation: Evaluation) -> str:
    rows = []
    for k, r in enumerate(evaluation.stats_rows):
        rows.append([str(r["iteration"])] + [f"{r[h]:.3f}" for h in stats.STATS_HEADER[1:]]
                    + [f"{summary.holm[k]:.3f}"])
    return _markdown_table(["iteration", "E_mixed", "E_sep", "M_mixed", "M_sep", "W_mixed_sep",
                            "W (Holm)"], rows)


def _metrics_markdown(evaluation: Evaluation) -> str:
    rows = [[r["input"], r["dimension"], f"{r['rmse']:.3f}", f"{r['pearson_r']:.3f}"]
            for r in evaluation.metrics_rows if r["iteration"] == "mean"]
    return _markdown_table(["input", "dimension", "RMSE", "Pearson r"], rows)


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
        sections.append(f"## {label}: {model} (`{csv_name}`, median: "
                        f"{evaluation.median_convention})\n\n{_stats_markdown(summary, evaluation)}"
                        f"\n\nRMSE and Pearson r (mean over iterations):\n\n"
                        f"{_metrics_markdown(evaluation)}\n\n![Figure 4, {model}]({figure})\n")
    figures = []
    for number, mode in ((2, "mixed"), (3, "sep")):
        if mode in loss_figures and Path(loss_figures[mode]).is_file():
            name = f"figure{number}_crnn_loss_{mode}.png"
            shutil.copyfile(loss_figures[mode], out / name)
            figures.append(f"![Figure {number}: CRNN loss, {mode}]({name})")
    text = [f"# {title}", "", "## Conclusion", "", *[f"- {c}" for c in conclusions], "",
            *sections, "## Figures 2-3: CRNN training and validation loss", "", *figures, "",
            "## Notes", "", *[f"- {n}" for n in notes], ""]
    (out / "report.md").write_text("\n".join(text))
    return out / "report.md"
