"""Evaluate prediction tables: per-song KL, the paper's E/M/W table, RMSE and Pearson r, Figure 4.

    python -m mer_jax.evaluate --predictions 'DIR/crnn_iteration_*.csv' --out OUT [--median paper]

Writes to OUT:
    kl_iteration_N.csv   song_id, kl_mixed, kl_sep (the inputs present)
    kl_baselines_iteration_N.csv  song_id, kl_constant, kl_calibrated (when baselines are known)
    stats.csv            iteration,E_mixed,E_sep,M_mixed,M_sep,W_mixed_sep (with several model
                         seeds: from each song's KL averaged over the seeds)
    stats_seeds.csv      seed,iteration,... the same per seed (runs of several seeds)
    baselines.csv        iteration,model,input,E_model,E_constant,E_calibrated,W_model_constant,
                         W_model_calibrated (when the training labels are known)
    metrics.csv          iteration, input, dimension, rmse, pearson_r (per iteration and "mean")
    correlations.csv     input,dimension,songs,r,r_low,r_high,r_constant,r_partial,r_partial_low,
                         r_partial_high,above_constant: pooled r of the predicted means and its
                         yardsticks (``verdict.correlation``; above_constant: 1 = skill)
    quadrants.csv        (quadrant-labelled datasets, ``--quadrants``) iteration, input, songs,
                         accuracy, ci_low, ci_high, recall_Q1..recall_Q4: per iteration and
                         "pooled" (each song once: its hit rate over the seeds and iterations
                         that tested it; Wilson 95% interval over songs), for mixed, sep and the
                         constant baseline (the evaluated songs' most frequent quadrant)
    confusion.csv        input, true, Q1..Q4: counts over every test prediction
    kl_histograms.png    the paper's Figure 4: per iteration, mixed vs sep, 30 bins
    evaluation.json      settings (median convention, std clamp) and the tables read
On the authors' predictions (../shared/data/paper_predictions) with ``--median paper`` this
reproduces the paper's Tables 1-2 to 3 decimals.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys
from pathlib import Path

import numpy as np

from mer_jax import baselines, plots, quadrants, stats
from mer_jax import kl as kl_lib
from mer_jax import verdict as verdict_lib
from mer_jax.data.songs import LABEL_NAMES
from mer_jax.files import write_csv, write_json
from mer_jax.predictions import IterationTable, PredictionTableError, read_iterations, same_truth

METRICS_HEADER = ("iteration", "input", "dimension", "rmse", "pearson_r")
BASELINES_HEADER = ("iteration", "model", "input", "E_model", "E_constant", "E_calibrated",
                    "W_model_constant", "W_model_calibrated")
SEED_STATS_HEADER = ("seed", *stats.STATS_HEADER)
QUADRANTS_HEADER = ("iteration", "input", "songs", "accuracy", "ci_low", "ci_high",
                    *(f"recall_{q}" for q in quadrants.QUADRANTS))
CONFUSION_HEADER = ("input", "true", *quadrants.QUADRANTS)
CORRELATIONS_HEADER = ("input", "dimension", "songs", "r", "r_low", "r_high", "r_constant",
                       "r_partial", "r_partial_low", "r_partial_high", "above_constant")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """KL per song, the stats table, baselines and regression metrics of a set of iterations.

    With several model seeds per iteration, ``kl`` holds each song's KL averaged over the seeds
    (the rows of ``stats.csv`` are computed from it) and ``kl_by_seed`` each seed's own.
    A ``categorical`` (quadrant-labelled) evaluation also holds each song's quadrant hits
    (1 = predicted means in the true quadrant), laid out like ``kl``.
    """

    tables: list[IterationTable]
    songs: dict[int, tuple[str, ...]]             # iteration -> test song ids
    kl: dict[int, dict[str, np.ndarray]]          # iteration -> input -> (songs,), seed mean
    kl_by_seed: dict[int | None, dict[int, dict[str, np.ndarray]]]
    baseline_kl: dict[int, dict[str, np.ndarray]]  # iteration -> baseline -> (songs,); {} unknown
    train_sizes: dict[int, int]                   # iteration -> training songs (when known)
    stats_rows: list[dict[str, float]]            # one per iteration, keys = stats.STATS_HEADER
    seed_stats_rows: list[dict[str, float]]       # one per seed and iteration (+ "seed")
    baseline_rows: list[dict[str, object]]        # keys = BASELINES_HEADER
    metrics_rows: list[dict[str, object]]         # keys = METRICS_HEADER
    median_convention: str
    min_std: float | None
    categorical: bool = False
    hits: dict = dataclasses.field(default_factory=dict)          # like kl: seed-mean hit rate
    hits_by_seed: dict = dataclasses.field(default_factory=dict)  # like kl_by_seed
    baseline_hits: dict = dataclasses.field(default_factory=dict)  # iteration -> {"constant": ..}
    confusion: dict = dataclasses.field(default_factory=dict)     # input -> (4, 4) counts [t, p]
    quadrant_rows: list = dataclasses.field(default_factory=list)  # keys = QUADRANTS_HEADER
    constant_means: dict = dataclasses.field(default_factory=dict)  # iteration -> (4,): the
    # constant baseline's prediction (its training songs' label means); {} when unknown

    @property
    def seeds(self) -> list[int | None]:
        return sorted(self.kl_by_seed, key=lambda s: -1 if s is None else s)


def _table_kl(table: IterationTable, order: np.ndarray, min_std) -> dict[str, np.ndarray]:
    """Per-song KL of each input of ``table``, rows reordered by ``order``."""
    out = {}
    truth = table.truth[order]
    ids = [table.song_ids[k] for k in order]
    for name, prediction in table.predictions.items():
        prediction = prediction[order]
        try:
            out[name] = kl_lib.kl_divergence(
                truth[:, :2], truth[:, 2:], prediction[:, :2], prediction[:, 2:],
                min_std=min_std, row_names=ids).astype(np.float64)
        except kl_lib.InvalidStdError as err:
            raise kl_lib.InvalidStdError(
                f"{', '.join(table.sources)}: '{name}' predictions: {err}", err.rows) from None
    return out


def _aligned(group: list[IterationTable]) -> list[np.ndarray]:
    """Row orders that put every seed's table of one iteration in the first one's song order."""
    first = group[0]
    position = {song: k for k, song in enumerate(first.song_ids)}
    orders = []
    for table in group:
        if set(table.song_ids) != set(first.song_ids):
            raise PredictionTableError(f"{table.sources[0]}: its songs differ from those of "
                                       f"{first.sources[0]} (same iteration {table.iteration})")
        order = np.argsort([position[s] for s in table.song_ids])
        if not same_truth(table.truth[order], first.truth).all():
            raise PredictionTableError(f"{table.sources[0]}: ground truth differs from "
                                       f"{first.sources[0]} for the same songs")
        orders.append(order)
    return orders


def _metric_rows(iteration: int, group: list[IterationTable], orders) -> list[dict]:
    """RMSE and Pearson r per input and label of one iteration's tables, mean over its seeds."""
    values: dict[tuple[str, str], list[tuple[float, float]]] = {}
    truth = group[0].truth
    for table, order in zip(group, orders):
        for name, prediction in table.predictions.items():
            pairs = zip(stats.rmse(truth, prediction[order]),
                        stats.pearson_r(truth, prediction[order]))
            for dimension, pair in zip(LABEL_NAMES, pairs):
                values.setdefault((name, dimension), []).append(pair)
    return [{"iteration": iteration, "input": name, "dimension": dimension,
             "rmse": float(np.mean([v[0] for v in pairs])),
             "pearson_r": float(np.mean([v[1] for v in pairs]))}
            for (name, dimension), pairs in values.items()]


def _mean_metric_rows(rows: list[dict]) -> list[dict]:
    """The rows of ``_metric_rows`` averaged over iterations (iteration "mean")."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["input"], row["dimension"]), []).append(row)
    return [{"iteration": "mean", "input": name, "dimension": dimension,
             "rmse": float(np.mean([r["rmse"] for r in group])),
             "pearson_r": float(np.mean([r["pearson_r"] for r in group]))}
            for (name, dimension), group in groups.items()]


def evaluate_iterations(tables: list[IterationTable], median_convention: str = "true",
                        min_std: float | None = None,
                        train_labels: dict[int, np.ndarray] | None = None,
                        model: str = "model", categorical: bool = False) -> Evaluation:
    """``train_labels``: iteration -> ``(n_train, 4)``, for the baselines (omitted: no baselines).
    ``model``: the name written in ``baselines.csv``. ``categorical``: the labels are quadrant
    proxies (``mer_jax.quadrants``): also score quadrant hits, accuracy and confusion."""
    groups: dict[int, list[IterationTable]] = {}
    for table in tables:
        groups.setdefault(table.iteration, []).append(table)
    songs, kl, by_seed, base, sizes, constants = {}, {}, {}, {}, {}, {}
    stats_rows, seed_rows, baseline_rows, metrics_rows = [], [], [], []
    for iteration, group in sorted(groups.items()):
        first = group[0]
        songs[iteration] = first.song_ids
        per_seed = {}
        orders = _aligned(group)
        for table, order in zip(group, orders):
            per_seed[table.seed] = _table_kl(table, order, min_std)
            by_seed.setdefault(table.seed, {})[iteration] = per_seed[table.seed]
        kl[iteration] = {name: np.mean([v[name] for v in per_seed.values()], axis=0)
                         for name in first.predictions}
        metrics_rows += _metric_rows(iteration, group, orders)
        stats_rows.append(stats.iteration_stats(iteration, kl[iteration], median_convention))
        if len(group) > 1:
            seed_rows += [{"seed": seed, **stats.iteration_stats(iteration, values,
                                                                 median_convention)}
                          for seed, values in sorted(per_seed.items())]
        if train_labels is not None:
            if iteration not in train_labels:
                raise PredictionTableError(f"iteration {iteration}: no training labels known "
                                           "for its baselines")
            sizes[iteration] = len(train_labels[iteration])
            constants[iteration] = baselines.constant(train_labels[iteration])
            base[iteration] = baselines.baseline_kl(first.truth, train_labels[iteration],
                                                    min_std)
            baseline_rows += _baseline_rows(iteration, model, kl[iteration], base[iteration])
    evaluation = Evaluation(tables, songs, kl, by_seed, base, sizes, stats_rows, seed_rows,
                            baseline_rows, metrics_rows + _mean_metric_rows(metrics_rows),
                            median_convention, min_std, constant_means=constants)
    if not categorical:
        return evaluation
    hits, hits_by_seed, baseline_hits, confusion = _quadrant_hits(
        groups, quadrants.true_quadrants(tables))
    evaluation = dataclasses.replace(evaluation, categorical=True, hits=hits,
                                     hits_by_seed=hits_by_seed, baseline_hits=baseline_hits,
                                     confusion=confusion)
    return dataclasses.replace(evaluation, quadrant_rows=_quadrant_rows(evaluation))


def _quadrant_hits(groups: dict[int, list[IterationTable]], truth: dict[str, int]) -> tuple:
    """Per-song quadrant hits of every table (seed-mean and per seed), of the constant baseline
    and confusion counts. The constant is the best single quadrant in hindsight: the most frequent
    true quadrant of the evaluated songs (each once), which bounds every constant classifier's
    accuracy (25% on a balanced set). A constant fitted on each iteration's training songs would
    score below chance on a balanced set (the training majority is the test minority).
    ``truth``: song id -> true quadrant (:func:`quadrants.true_quadrants`)."""
    constant = quadrants.constant_quadrant(np.array(list(truth.values())))
    hits, by_seed, base, confusion = {}, {}, {}, {}
    for iteration, group in sorted(groups.items()):
        first = group[0]
        true = quadrants.quadrant_of(first.truth[:, 0], first.truth[:, 1])
        per_seed = {}
        for table, order in zip(group, _aligned(group)):
            per_seed[table.seed] = {}
            for name, prediction in table.predictions.items():
                predicted = quadrants.quadrant_of(prediction[order, 0], prediction[order, 1])
                per_seed[table.seed][name] = (predicted == true).astype(np.float64)
                np.add.at(confusion.setdefault(name, np.zeros((4, 4), int)), (true, predicted), 1)
            by_seed.setdefault(table.seed, {})[iteration] = per_seed[table.seed]
        hits[iteration] = {name: np.mean([v[name] for v in per_seed.values()], axis=0)
                           for name in first.predictions}
        base[iteration] = {"constant": (true == constant).astype(np.float64)}
    return hits, by_seed, base, confusion


def _quadrant_rows(evaluation: Evaluation) -> list[dict[str, object]]:
    rows, pooled = [], {}
    truth = quadrants.true_quadrants(evaluation.tables)
    for iteration, songs in evaluation.songs.items():
        true = np.array([truth[s] for s in songs])
        for name, values in {**evaluation.hits[iteration],
                             **evaluation.baseline_hits.get(iteration, {})}.items():
            rows.append(quadrants.scores_row(iteration, name, values, true))
            pooled.setdefault(name, {})[iteration] = values
    for name, by_iteration in pooled.items():
        per_song = verdict_lib.per_song(by_iteration, evaluation.songs)
        rows.append(quadrants.scores_row("pooled", name, np.array(list(per_song.values())),
                                         np.array([truth[s] for s in per_song])))
    return rows


def correlation_rows(evaluation: Evaluation) -> list[dict[str, object]]:
    """correlations.csv: ``verdict.correlation`` per input and predicted mean."""
    rows = []
    for name in evaluation.tables[0].predictions:
        c = verdict_lib.correlation(evaluation, name)
        for d, dimension in enumerate(LABEL_NAMES[:2]):
            rows.append(dict(zip(CORRELATIONS_HEADER, (
                name, dimension, c.songs, c.r[d], *c.interval[d], c.r_constant[d],
                c.r_partial[d], *c.interval_partial[d], int(c.above_constant[d])))))
    return rows


def _baseline_rows(iteration, model, kl, base) -> list[dict[str, object]]:
    return [{"iteration": iteration, "model": model, "input": name,
             "E_model": float(np.mean(values)), "E_constant": float(np.mean(base["constant"])),
             "E_calibrated": float(np.mean(base["calibrated"])),
             "W_model_constant": stats.wilcoxon_p(values, base["constant"]),
             "W_model_calibrated": stats.wilcoxon_p(values, base["calibrated"])}
            for name, values in kl.items()]


def write_evaluation(evaluation: Evaluation, out: os.PathLike | str,
                     title: str | None = None) -> Path:
    """Writes the files listed in the module docstring into ``out``; the ones an earlier
    evaluation left there (other iterations, seeds or baselines) are removed first."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in ("kl_iteration_*.csv", "kl_baselines_iteration_*.csv", "stats_seeds.csv",
                    "baselines.csv", "quadrants.csv", "confusion.csv"):
        for stale in out.glob(pattern):
            stale.unlink()
    for iteration, songs in evaluation.songs.items():
        for name, kl in (("kl", evaluation.kl[iteration]),
                         ("kl_baselines", evaluation.baseline_kl.get(iteration))):
            if kl:
                header = ["song_id", *(f"kl_{n}" for n in kl)]
                rows = [{"song_id": song, **{f"kl_{n}": float(v[k]) for n, v in kl.items()}}
                        for k, song in enumerate(songs)]
                write_csv(out / f"{name}_iteration_{iteration}.csv", header, rows)
    write_csv(out / "stats.csv", stats.STATS_HEADER, evaluation.stats_rows)
    if evaluation.seed_stats_rows:
        write_csv(out / "stats_seeds.csv", SEED_STATS_HEADER, evaluation.seed_stats_rows)
    if evaluation.baseline_rows:
        write_csv(out / "baselines.csv", BASELINES_HEADER, evaluation.baseline_rows)
    write_csv(out / "metrics.csv", METRICS_HEADER, evaluation.metrics_rows)
    write_csv(out / "correlations.csv", CORRELATIONS_HEADER, correlation_rows(evaluation))
    if evaluation.categorical:
        write_csv(out / "quadrants.csv", QUADRANTS_HEADER, evaluation.quadrant_rows)
        write_csv(out / "confusion.csv", CONFUSION_HEADER, [
            {"input": name, "true": quadrants.QUADRANTS[t],
             **dict(zip(quadrants.QUADRANTS, map(int, counts[t])))}
            for name, counts in evaluation.confusion.items() for t in range(4)])
    plots.kl_histograms(evaluation.kl, out / "kl_histograms.png", title=title)
    write_json(out / "evaluation.json", {
        "median_convention": evaluation.median_convention, "min_std": evaluation.min_std,
        "seeds": evaluation.seeds, "baselines": bool(evaluation.baseline_rows),
        "categorical": evaluation.categorical,
        "tables": {f"{t.iteration}" + (f"/seed {t.seed}" if t.seed is not None else ""):
                   list(t.sources) for t in evaluation.tables}})
    return out


def format_baselines(rows: list[dict[str, object]]) -> str:
    """The baselines table as printed text (mean KL per iteration, Wilcoxon p against each)."""
    lines = [f"{'iteration':>9} {'input':>6} {'E_model':>8} {'E_const':>8} {'E_calib':>8} "
             f"{'W_const':>8} {'W_calib':>8}"]
    for r in rows:
        lines.append(f"{r['iteration']:>9} {r['input']:>6} {r['E_model']:>8.3f} "
                     f"{r['E_constant']:>8.3f} {r['E_calibrated']:>8.3f} "
                     f"{r['W_model_constant']:>8.2g} {r['W_model_calibrated']:>8.2g}")
    return "\n".join(lines)


def format_stats(rows: list[dict[str, float]]) -> str:
    header = stats.STATS_HEADER
    lines = ["  ".join(f"{h:>11}" for h in header)]
    for row in rows:
        lines.append("  ".join(f"{row[h]:>11}" if h == "iteration" else f"{row[h]:>11.3f}"
                               for h in header))
    return "\n".join(lines)


def format_metrics(rows: list[dict[str, object]]) -> str:
    lines = [f"{'input':>6} {'dimension':>13} {'RMSE':>7} {'Pearson r':>9}"
             "   (mean over iterations)"]
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
    parser.add_argument("--baselines-from-tables", action="store_true",
                        help="score the constant and calibrated-constant baselines, with each "
                             "iteration's training labels taken as the labelled songs of the "
                             "other tables not in its test set (as for the authors' files)")
    parser.add_argument("--model", default="model", help="model name in baselines.csv")
    parser.add_argument("--quadrants", action="store_true",
                        help="the labels are quadrant proxies (a quadrant-labelled dataset such "
                             "as 4Q): also score quadrant accuracy, recall and confusion")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = sorted({p for pattern in args.predictions for p in glob.glob(pattern)})
    if not paths:
        print(f"error: no files match {args.predictions}", file=sys.stderr)
        return 2
    try:
        tables = read_iterations(paths)
        train = baselines.training_labels_from_tables(tables) \
            if args.baselines_from_tables else None
        evaluation = evaluate_iterations(tables, args.median, args.min_std, train, args.model,
                                         categorical=args.quadrants)
    except (PredictionTableError, kl_lib.InvalidStdError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = write_evaluation(evaluation, args.out, title=args.title)
    print(f"{len(evaluation.songs)} iterations x {len(evaluation.seeds)} seed(s) from "
          f"{len(paths)} tables; median: {args.median}")
    print(format_stats(evaluation.stats_rows))
    print(format_metrics(evaluation.metrics_rows))
    for name in evaluation.tables[0].predictions:
        print(f"{name}: {verdict_lib.correlation(evaluation, name).describe()}")
    if evaluation.baseline_rows:
        print(format_baselines(evaluation.baseline_rows))
    if evaluation.categorical:
        print(quadrants.format_pooled(evaluation.quadrant_rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
