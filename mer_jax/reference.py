"""Our models beside reference predictions of the same test songs, song by song.

    python -m mer_jax.reference --predictions 'WORK/crnn/predictions/*_iteration_*.csv' \
        --reference '../shared/data/paper_predictions/crnn_iteration_*.csv' --out DIR \
        [--median true|paper] [--min-std EPS]

Trained with ``--set test_songs_from=REFERENCE_GLOB`` (``TrainConfig.test_songs_from``), each
iteration of our models tested songs the reference's tables tested in the same iteration (those
of our store): the per-song KLs are then paired. Writes ``DIR/reference.csv``, header
``iteration,input,songs,E_ours,E_reference,M_ours,M_reference,W_ours_reference``: one row per
iteration and input found in both (E: mean KL, M: median, W: two-sided Wilcoxon p over the
paired songs), and a ``pooled`` row per input (each song's KL averaged over the iterations
that tested it, ours and the reference's over the same iterations). With several seeds our KL
is each song's seed mean. Prints the table and, last, the path of ``reference.csv``.
Our songs must be among the reference's of each iteration and their ground truth equal; else
an error names the iteration and songs.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import numpy as np

from mer_jax import kl as kl_lib
from mer_jax import stats
from mer_jax.evaluate import Evaluation, evaluate_iterations
from mer_jax.files import write_csv
from mer_jax.predictions import PredictionTableError, read_iterations, same_truth

HEADER = ("iteration", "input", "songs", "E_ours", "E_reference", "M_ours", "M_reference",
          "W_ours_reference")


def _row(iteration, name: str, ours: np.ndarray, reference: np.ndarray, median: str) -> dict:
    """``ours``, ``reference``: (songs,) paired per-song KLs."""
    return {"iteration": iteration, "input": name, "songs": int(ours.size),
            "E_ours": float(np.mean(ours)), "E_reference": float(np.mean(reference)),
            "M_ours": stats.median(ours, median), "M_reference": stats.median(reference, median),
            "W_ours_reference": stats.wilcoxon_p(ours, reference)}


def _truth(evaluation: Evaluation, iteration: int) -> dict[str, np.ndarray]:
    """song id -> (4,) ground truth, from the iteration's first table."""
    table = next(t for t in evaluation.tables if t.iteration == iteration)
    return dict(zip(table.song_ids, table.truth))


def paired_kl(ours: Evaluation, reference: Evaluation) -> dict[str, dict[int, tuple]]:
    """input -> iteration -> (song ids, ours (songs,), reference (songs,)): our test songs of
    each iteration, both KLs in our song order."""
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
        for name, values in ours.kl[iteration].items():
            if name in reference.kl[iteration]:
                out.setdefault(name, {})[iteration] = (songs, values,
                                                       reference.kl[iteration][name][order])
    if not out:
        raise ValueError("no input (mixed, sep) is in both our tables and the reference's")
    return out


def compare(ours: Evaluation, reference: Evaluation, median: str = "true") -> list[dict]:
    """Rows of ``reference.csv`` (module docstring)."""
    rows = []
    for name, per_iteration in paired_kl(ours, reference).items():
        pooled: dict[str, list[tuple[float, float]]] = {}
        for iteration, (songs, mine, theirs) in per_iteration.items():
            rows.append(_row(iteration, name, mine, theirs, median))
            for song, a, b in zip(songs, mine, theirs):
                pooled.setdefault(song, []).append((a, b))
        means = np.array([np.mean(pairs, axis=0) for pairs in pooled.values()])   # (songs, 2)
        rows.append(_row("pooled", name, means[:, 0], means[:, 1], median))
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["iteration  input  songs  E ours  E ref.  M ours  M ref.  W p"]
    lines += [f"{str(r['iteration']):>9}  {r['input']:<5}  {r['songs']:>5}  {r['E_ours']:.4f}  "
              f"{r['E_reference']:.4f}  {r['M_ours']:.4f}  {r['M_reference']:.4f}  "
              f"{r['W_ours_reference']:.3g}" for r in rows]
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
        evaluations = []
        for pattern in (args.predictions, args.reference):
            paths = sorted(glob.glob(os.path.expanduser(pattern)))
            if not paths:
                raise ValueError(f"no files match {pattern}")
            evaluations.append(evaluate_iterations(read_iterations(paths), args.median,
                                                   args.min_std))
        rows = compare(*evaluations, median=args.median)
    except (PredictionTableError, kl_lib.InvalidStdError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = Path(args.out) / "reference.csv"
    write_csv(path, HEADER, rows)
    print(format_rows(rows))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
