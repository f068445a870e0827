"""Reproduce the paper's Tables 1-2 from the authors' own per-song predictions.

    python -m pipelines.reproduce_paper --predictions-dir ../shared/data/paper_predictions --out OUT

Runs the evaluation (KL per song, E/M/W per iteration, Figure 4) on crnn_iteration_*.csv and
rf_iteration_*.csv with the paper's median convention and compares every cell with
paper_table1_crnn.csv / paper_table2_rf.csv at the paper's 3 decimals. Expected: 50/50 cells
match for each table. Exit code 1 if any cell differs.

Beside each table it scores the two trivial baselines (mer_jax.baselines: a constant, and a
calibrated constant, fitted per iteration on the labelled songs of the other tables that are not
in its test set), writes OUT/crnn/baselines.csv and OUT/rf/baselines.csv, and says, computed
from the numbers (pooled one-sided Wilcoxon over songs, mer_jax.verdict), which of the authors'
models beat which baseline. Expected: only the CRNN on mixed input beats the calibrated
constant; the Random Forest beats neither baseline. Then each model's pooled Pearson r with its
yardsticks (``verdict.correlation``). Expected: the CRNN's valence and arousal r are above the
constant's, the Random Forest's (within 0.05 of 0) are not.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from mer_jax import baselines, evaluate, stats, verdict
from mer_jax.predictions import read_iterations

TABLES = {"crnn": "paper_table1_crnn.csv", "rf": "paper_table2_rf.csv"}


def compare(ours: list[dict], paper_csv: Path) -> tuple[int, list[str]]:
    """Cells that agree at 3 decimals, and a description of each that does not."""
    with open(paper_csv, newline="") as f:
        paper = {int(r["iteration"]): r for r in csv.DictReader(f)}
    matched, diffs = 0, []
    for row in ours:
        for key in stats.STATS_HEADER[1:]:
            want = float(paper[row["iteration"]][key])
            if abs(round(row[key], 3) - want) < 1e-9:
                matched += 1
            else:
                diffs.append(f"iteration {row['iteration']} {key}: ours {row[key]:.4f}, "
                             f"paper {want:.3f}")
    return matched, diffs


def beats(model: str, skill: verdict.Skill) -> str:
    """One line: does this model beat each baseline (pooled over songs, one-sided, p < 0.05)?"""
    def word(p):
        return ("beats" if p < verdict.ALPHA else "does not beat") + f" (p = {p:.2g})"
    return (f"{model} {skill.input}: mean KL {skill.mean_kl:.3f}; {word(skill.p_constant)} the "
            f"constant ({skill.mean_kl_constant:.3f}); {word(skill.p)} the calibrated constant "
            f"({skill.mean_kl_calibrated:.3f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    all_match = True
    for model, table in TABLES.items():
        tables = read_iterations(sorted(args.predictions_dir.glob(f"{model}_iteration_*.csv")))
        result = evaluate.evaluate_iterations(tables, median_convention="paper",
                                              train_labels=baselines.training_labels_from_tables(
                                                  tables), model=model.upper())
        out = evaluate.write_evaluation(result, args.out / model,
                                        title=f"{model.upper()}: KL divergence, mixed vs sep")
        matched, diffs = compare(result.stats_rows, args.predictions_dir / table)
        total = matched + len(diffs)
        print(f"\n{model.upper()} ({table}): {matched}/{total} cells match the paper at 3 decimals")
        print(evaluate.format_stats(result.stats_rows))
        print(evaluate.format_metrics(result.metrics_rows))
        for line in diffs:
            print("  differs:", line)
        print(f"baselines (mean KL per iteration; W: two-sided Wilcoxon p of the model against "
              f"each) -> {out / 'baselines.csv'}")
        print(evaluate.format_baselines(result.baseline_rows))
        for name in ("mixed", "sep"):
            print(beats(model.upper(), verdict.skill(result, name)))
        for name in ("mixed", "sep"):
            print(f"{model.upper()} {name}: "
                  f"{verdict.correlation(result, name).describe()}")
        print(f"outputs: {out}")
        all_match &= not diffs
    print(f"\nPaper Tables 1-2 reproduced: {'yes' if all_match else 'NO'}")
    return 0 if all_match else 1


if __name__ == "__main__":
    sys.exit(main())
