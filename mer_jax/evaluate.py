"""Evaluate prediction tables: per-song KL, the paper's E/M/W table, RMSE and Pearson r, Figure 4.

    python -m mer_jax.evaluate --predictions 'DIR/crnn_iteration_*.csv' --out OUT [--median paper]

Writes to OUT:
    kl_iteration_N.csv   song_id, kl_mixed, kl_sep (the inputs present)
    stats.csv            iteration,E_mixed,E_sep,M_mixed,M_sep,W_mixed_sep
    metrics.csv          iteration, input, dimension, rmse, pearson_r (per iteration and "mean")
    kl_histograms.png    the paper's Figure 4: per iteration, mixed vs sep, 30 bins
    evaluation.json      settings (median convention, std clamp) and the tables read
On the authors' predictions (../shared/data/paper_predictions) with ``--median paper`` this
reproduces the paper's Tables 1-2 to 3 decimals.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from mer_jax import kl as kl_lib
from mer_jax import plots, stats
from mer_jax.data.songs import LABEL_NAMES
from mer_jax.predictions import IterationTable, PredictionTableError, read_iterations

METRICS_HEADER = ("iteration", "input", "dimension", "rmse", "pearson_r")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """KL per song, the stats table, and regression metrics of a set of iterations."""

    tables: list[IterationTable]
    kl: dict[int, dict[str, np.ndarray]]          # iteration -> input -> (songs,)
    stats_rows: list[dict[str, float]]            # one per iteration, keys = stats.STATS_HEADER
    metrics_rows: list[dict[str, object]]         # keys = METRICS_HEADER
    median_convention: str
    min_std: float | None


def evaluate_iterations(tables: list[IterationTable], median_convention: str = "true",
                        min_std: float | None = None) -> Evaluation:
    kl: dict[int, dict[str, np.ndarray]] = {}
    stats_rows, metrics_rows = [], []
    per_input: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for table in tables:
        kl[table.iteration] = {}
        for name, prediction in table.predictions.items():
            try:
                kl[table.iteration][name] = kl_lib.kl_divergence(
                    table.truth[:, :2], table.truth[:, 2:], prediction[:, :2], prediction[:, 2:],
                    min_std=min_std, row_names=table.song_ids).astype(np.float64)
            except kl_lib.InvalidStdError as err:
                raise kl_lib.InvalidStdError(
                    f"{', '.join(table.sources)}: '{name}' predictions: {err}", err.rows) from None
            errors = stats.rmse(table.truth, prediction)
            correlations = stats.pearson_r(table.truth, prediction)
            for d, dim in enumerate(LABEL_NAMES):
                metrics_rows.append({"iteration": table.iteration, "input": name,
                                     "dimension": dim, "rmse": float(errors[d]),
                                     "pearson_r": float(correlations[d])})
                per_input.setdefault((name, dim), []).append((errors[d], correlations[d]))
        stats_rows.append(stats.iteration_stats(table.iteration, kl[table.iteration],
                                                median_convention))
    for (name, dim), values in per_input.items():
        errors, correlations = np.array(values).T
        metrics_rows.append({"iteration": "mean", "input": name, "dimension": dim,
                             "rmse": float(errors.mean()), "pearson_r": float(correlations.mean())})
    return Evaluation(tables, kl, stats_rows, metrics_rows, median_convention, min_std)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".6g")
    return str(value)


def write_csv(path: Path, header, rows) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_fmt(row[key]) for key in header])
    os.replace(tmp, path)


def write_evaluation(evaluation: Evaluation, out: os.PathLike | str, title: str | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for table in evaluation.tables:
        kl = evaluation.kl[table.iteration]
        header = ["song_id", *(f"kl_{name}" for name in kl)]
        rows = [{"song_id": song, **{f"kl_{n}": float(v[k]) for n, v in kl.items()}}
                for k, song in enumerate(table.song_ids)]
        write_csv(out / f"kl_iteration_{table.iteration}.csv", header, rows)
    write_csv(out / "stats.csv", stats.STATS_HEADER, evaluation.stats_rows)
    write_csv(out / "metrics.csv", METRICS_HEADER, evaluation.metrics_rows)
    plots.kl_histograms(evaluation.kl, out / "kl_histograms.png", title=title)
    summary = {"median_convention": evaluation.median_convention, "min_std": evaluation.min_std,
               "iterations": {t.iteration: list(t.sources) for t in evaluation.tables}}
    (out / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out


def format_stats(rows: list[dict[str, float]]) -> str:
    header = stats.STATS_HEADER
    lines = ["  ".join(f"{h:>11}" for h in header)]
    for row in rows:
        lines.append("  ".join(f"{row[h]:>11}" if h == "iteration" else f"{row[h]:>11.3f}"
                               for h in header))
    return "\n".join(lines)


def format_metrics(rows: list[dict[str, object]]) -> str:
    lines = [f"{'input':>6} {'dimension':>13} {'RMSE':>7} {'Pearson r':>9}   (mean over iterations)"]
    for row in rows:
        if row["iteration"] == "mean":
            lines.append(f"{row['input']:>6} {row['dimension']:>13} {row['rmse']:>7.3f} "
                         f"{row['pearson_r']:>9.3f}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mer_jax.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True, action="append",
                        help="glob of prediction CSVs (quote it); may be repeated")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--median", choices=stats.MEDIAN_CONVENTIONS, default="true",
                        help="'true' median (default) or the paper's upper-middle element")
    parser.add_argument("--min-std", type=float, default=None,
                        help="clamp standard deviations to at least this value instead of "
                             "rejecting predictions with sigma <= 0")
    parser.add_argument("--title", default=None, help="title of the histogram figure")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = sorted({p for pattern in args.predictions for p in glob.glob(pattern)})
    if not paths:
        print(f"error: no files match {args.predictions}", file=sys.stderr)
        return 2
    try:
        tables = read_iterations(paths)
        evaluation = evaluate_iterations(tables, args.median, args.min_std)
    except (PredictionTableError, kl_lib.InvalidStdError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = write_evaluation(evaluation, args.out, title=args.title)
    print(f"{len(tables)} iterations from {len(paths)} tables; median: {args.median}")
    print(format_stats(evaluation.stats_rows))
    print(format_metrics(evaluation.metrics_rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
