"""Our models beside reference predictions of the same test songs, song by song.

    python -m mer_jax.reference --predictions 'WORK/crnn/predictions/*_iteration_*.csv' \
        --reference '../shared/data/paper_predictions/crnn_iteration_*.csv' --out DIR \
        [--median true|paper] [--min-std EPS]

Trained with ``--set test_songs_from=REFERENCE_GLOB`` (``TrainConfig.test_songs_from``), each
iteration of our models tested songs the reference's tables tested in the same iteration (those
of our store): the per-song KLs are then paired. Writes ``DIR/reference.csv``, header
``iteration,input,songs,E_ours,E_reference,M_ours,M_reference,W_ours_reference,E_constant,``
``E_calibrated,P_ours_calibrated,P_reference_calibrated,seeds,E_ours_seed_min,E_ours_seed_max``:
one row per iteration and input found in both (E: mean KL, M: median, W: two-sided Wilcoxon p
over the paired songs), and a ``pooled`` row per input (each song's KL averaged over the
iterations that tested it, ours and the reference's over the same iterations). With several
seeds our KL is each song's seed mean, and the seed columns give the spread: our E per seed
(its models alone), lowest and highest.

The yardsticks, on the same songs: the constant and calibrated-constant baselines
(``mer_jax.baselines``), fitted per iteration on the labelled songs of the reference's tables
outside that iteration's test set (as ``mer_jax.evaluate --baselines-from-tables``); P: the skill
gate's one-sided Wilcoxon p that a side's KL is below the calibrated constant's. The pooled rows'
P say which side learned (p < 0.05); a difference between sides of which one did not learn is
printed as such. Without such songs (a single reference table) the baseline columns are empty.

Prints the table, the gates and, last, the path of ``reference.csv``. Our songs must be among the
reference's of each iteration and their ground truth equal; else an error names the iteration
and songs.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import numpy as np

from mer_jax import baselines, stats, verdict
from mer_jax import kl as kl_lib
from mer_jax.evaluate import Evaluation, evaluate_iterations
from mer_jax.files import write_csv
from mer_jax.predictions import PredictionTableError, read_iterations, same_truth

HEADER = ("iteration", "input", "songs", "E_ours", "E_reference", "M_ours", "M_reference",
          "W_ours_reference", "E_constant", "E_calibrated", "P_ours_calibrated",
          "P_reference_calibrated", "seeds", "E_ours_seed_min", "E_ours_seed_max")
SIDES = ("ours", "reference", "constant", "calibrated")


def _row(iteration, name: str, kl: np.ndarray, seed_means: list[float], median: str) -> dict:
    """``kl``: (4, songs) paired per-song KLs of SIDES (baselines NaN when unknown);
    ``seed_means``: our mean KL over the same songs, one per model seed."""
    ours, reference, constant, calibrated = kl
    known = bool(np.all(np.isfinite(calibrated)))
    nan = float("nan")
    return {"iteration": iteration, "input": name, "songs": int(ours.size),
            "E_ours": float(np.mean(ours)), "E_reference": float(np.mean(reference)),
            "M_ours": stats.median(ours, median), "M_reference": stats.median(reference, median),
            "W_ours_reference": stats.wilcoxon_p(ours, reference),
            "E_constant": float(np.mean(constant)), "E_calibrated": float(np.mean(calibrated)),
            "P_ours_calibrated": stats.wilcoxon_p(ours, calibrated, "less") if known else nan,
            "P_reference_calibrated": (stats.wilcoxon_p(reference, calibrated, "less") if known
                                       else nan),
            "seeds": len(seed_means), "E_ours_seed_min": float(min(seed_means)),
            "E_ours_seed_max": float(max(seed_means))}


def _truth(evaluation: Evaluation, iteration: int) -> dict[str, np.ndarray]:
    """song id -> (4,) ground truth, from the iteration's first table."""
    table = next(t for t in evaluation.tables if t.iteration == iteration)
    return dict(zip(table.song_ids, table.truth))


def paired_kl(ours: Evaluation, reference: Evaluation) -> dict[str, dict[int, tuple]]:
    """input -> iteration -> (song ids, (4, songs) KLs of SIDES, {seed: (songs,) our KL}): our
    test songs of each iteration, in our song order; the baselines' are the reference
    evaluation's (NaN without)."""
    out: dict[str, dict[int, tuple]] = {}
    for iteration, songs in sorted(ours.songs.items()):
        if iteration not in reference.songs:
            raise ValueError(f"iteration {iteration}: no reference table")
        position = {song: k for k, song in enumerate(reference.songs[iteration])}
        missing = [s for s in songs if s not in position]
        if missing:
            raise ValueError(f"iteration {iteration}: our test songs {missing[:10]} are not the "
                             "reference's (train with test_songs_from set to its tables)")
        truth, theirs = _truth(ours, iteration), _truth(reference, iteration)
        off = [s for s in songs if not same_truth(truth[s], theirs[s])]
        if off:
            raise ValueError(f"iteration {iteration}: the ground truth of songs {off[:10]} "
                             "differs from the reference's (another dataset or labelling?)")
        order = np.array([position[s] for s in songs])
        base = reference.baseline_kl.get(iteration, {})
        yardsticks = [base[b][order] if b in base else np.full(len(songs), np.nan)
                      for b in ("constant", "calibrated")]
        for name, values in ours.kl[iteration].items():
            if name in reference.kl[iteration]:
                seeds = {seed: kl[iteration][name] for seed, kl in ours.kl_by_seed.items()
                         if iteration in kl}
                out.setdefault(name, {})[iteration] = (songs, np.stack(
                    [values, reference.kl[iteration][name][order], *yardsticks]), seeds)
    if not out:
        raise ValueError("no input (mixed, sep) is in both our tables and the reference's")
    return out


def compare(ours: Evaluation, reference: Evaluation, median: str = "true") -> list[dict]:
    """Rows of ``reference.csv`` (module docstring)."""
    rows = []
    for name, per_iteration in paired_kl(ours, reference).items():
        songs = {iteration: entry[0] for iteration, entry in per_iteration.items()}
        for iteration, (_, kl, seeds) in per_iteration.items():
            rows.append(_row(iteration, name, kl, [v.mean() for v in seeds.values()], median))
        sides = [verdict.per_song({it: kl[k] for it, (_, kl, _) in per_iteration.items()}, songs)
                 for k in range(len(SIDES))]
        means = np.array([list(side.values()) for side in sides]).T          # (songs, 4)
        all_seeds = {seed for _, _, seeds in per_iteration.values() for seed in seeds}
        seed_means = [np.mean(list(verdict.per_song(
            {it: seeds[seed] for it, (_, _, seeds) in per_iteration.items() if seed in seeds},
            songs).values())) for seed in all_seeds]
        rows.append(_row("pooled", name, means.T, seed_means, median))
    return rows


def gates(rows: list[dict]) -> list[str]:
    """One line per input from its pooled row: which side learned (beat the calibrated constant,
    one-sided p < ALPHA) and whether the two sides' difference is a finding."""
    lines = []
    for row in (r for r in rows if r["iteration"] == "pooled"):
        p = {side: row[f"P_{side}_calibrated"] for side in ("ours", "reference")}
        if not all(np.isfinite(list(p.values()))):
            lines.append(f"{row['input']}: baselines unknown, no skill gate")
            continue
        learned = {side: value < verdict.ALPHA for side, value in p.items()}
        said = ", ".join(f"{side} {'learned' if learned[side] else 'did not learn'} "
                         f"(p = {p[side]:.3g})" for side in p)
        tail = ("both learned: W compares two models that learned" if all(learned.values())
                else "no finding from W: not both learned")
        lines.append(f"{row['input']}: {said}; {tail}")
    return lines


def format_rows(rows: list[dict]) -> str:
    lines = ["iteration  input  songs  E ours (seeds)           E ref.  M ours  M ref.  W p       "
             "E const.  E calib."]
    lines += [f"{str(r['iteration']):>9}  {r['input']:<5}  {r['songs']:>5}  {r['E_ours']:.4f} "
              f"({r['E_ours_seed_min']:.4f}-{r['E_ours_seed_max']:.4f})  "
              f"{r['E_reference']:.4f}  {r['M_ours']:.4f}  {r['M_reference']:.4f}  "
              f"{r['W_ours_reference']:<8.3g}  {r['E_constant']:.4f}    {r['E_calibrated']:.4f}"
              for r in rows]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mer_jax.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True, help="glob of our tables (quote it)")
    parser.add_argument("--reference", required=True, help="glob of the reference's tables")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--median", choices=stats.MEDIAN_CONVENTIONS, default="true")
    parser.add_argument("--min-std", type=float, default=None,
                        help="clamp predicted standard deviations to at least this value "
                             "(both sides) instead of rejecting sigma <= 0")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        tables = []
        for pattern in (args.predictions, args.reference):
            paths = sorted(glob.glob(os.path.expanduser(pattern)))
            if not paths:
                raise ValueError(f"no files match {pattern}")
            tables.append(read_iterations(paths))
        try:
            train_labels = baselines.training_labels_from_tables(tables[1])
        except ValueError:
            train_labels = None      # a single reference table: no song outside its test set
        ours = evaluate_iterations(tables[0], args.median, args.min_std)
        reference = evaluate_iterations(tables[1], args.median, args.min_std, train_labels)
        rows = compare(ours, reference, median=args.median)
    except (PredictionTableError, kl_lib.InvalidStdError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = Path(args.out) / "reference.csv"
    write_csv(path, HEADER, rows)
    print(format_rows(rows))
    print("\n".join(gates(rows)))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
