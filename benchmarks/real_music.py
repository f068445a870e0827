"""Benchmark: the whole experiment on real music, the 4Q development set (160 clips, 40 per
quadrant), scored by quadrant accuracy. Not a test: it takes tens of minutes on 2 cores.

    python benchmarks/real_music.py [--config small] [--iterations 5] [--seeds 3] \
        [--data-dir ../shared/data/4q-dev] [--workdir cache/real_music] [--set KEY=VALUE ...]

Runs ``pipelines.experiment`` (spleeter4 stems, 30 s clips, CRNN and Random Forest, mixed and
sep, ``iterations`` Monte-Carlo splits x ``seeds`` model seeds) and prints, per model and input:
the quadrant accuracy with its Wilson 95% interval over songs (each song once: its hit rate over
the seeds and iterations that tested it), the range of the seeds' accuracies, the constant
quadrant's accuracy, the skill gate, Pearson r of the predicted valence / arousal means with
Fisher 95% intervals (in bold where the partial r of ``verdict.correlation`` is not
significantly above 0) and the constant baseline's r, the mean KL against the quadrant-centre
proxies, and the time each stage took. The store is cached under --cache-dir and each finished
stage is skipped on rerun (a changed config or --set makes new stage keys, never stale
results); the workdir is named after the config and its overrides. Writes
WORKDIR/real_music.json and WORKDIR/summary.md (the table); prints the Markdown table last.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mer_jax import files, verdict  # noqa: E402
from mer_jax.preprocess import PreprocessConfig, preprocess  # noqa: E402
from mer_jax.training.config import apply_overrides, load_config  # noqa: E402
from pipelines import experiment  # noqa: E402

CLIP_SECONDS = 30.0


def rows_of(result) -> list[dict]:
    """One row per model and input from an ExperimentResult of a categorical dataset."""
    rows = []
    for model, evaluation in result.evaluations.items():
        for name in ("mixed", "sep"):
            gate = verdict.quadrant_skill(evaluation, name)
            c = verdict.correlation(evaluation, name)
            kl = verdict.per_song({it: v[name] for it, v in evaluation.kl.items()},
                                  evaluation.songs)
            rows.append({
                "model": model, "input": name, "songs": gate.songs, "accuracy": gate.accuracy,
                "accuracy_ci": list(gate.interval),
                "seed_accuracy": {str(k): v for k, v in gate.seed_accuracy.items()},
                "accuracy_constant": gate.accuracy_constant, "gate_p": gate.p,
                "learned": gate.learned,
                **{f"r_{dim}{key}": value for d, dim in enumerate(verdict.DIMENSIONS)
                   for key, value in (("", float(c.r[d])), ("_ci", c.interval[d].tolist()),
                                      ("_constant", float(c.r_constant[d])),
                                      ("_partial", float(c.r_partial[d])),
                                      ("_partial_ci", c.interval_partial[d].tolist()),
                                      ("_above_constant", bool(c.above_constant[d])))},
                "mean_kl": float(sum(kl.values()) / len(kl))})
    return rows


def _r_cell(row: dict, dim: str) -> str:
    """r (Fisher 95% CI), in bold unless it is above the constant (``verdict.Correlation``)."""
    low, high = row[f"r_{dim}_ci"]
    text = f"{row[f'r_{dim}']:+.2f} ({low:+.2f} to {high:+.2f})"
    return text if row[f"r_{dim}_above_constant"] else f"**{text}**"


def markdown(rows: list[dict]) -> str:
    lines = ["| model | input | quadrant accuracy (95% CI) | seeds | constant | skill gate | "
             "r valence (95% CI) | r arousal (95% CI) | r constant | mean KL |",
             "|" + "---|" * 10]
    for r in rows:
        seeds = list(r["seed_accuracy"].values())
        lines.append(
            f"| {r['model']} | {r['input']} | {r['accuracy']:.1%} ({r['accuracy_ci'][0]:.1%}-"
            f"{r['accuracy_ci'][1]:.1%}) | {min(seeds):.1%}-{max(seeds):.1%} | "
            f"{r['accuracy_constant']:.1%} | "
            f"{'learned' if r['learned'] else 'did not learn'} (p = {r['gate_p']:.2g}) | "
            f"{_r_cell(r, 'valence')} | {_r_cell(r, 'arousal')} | "
            f"{r['r_valence_constant']:+.2f} / {r['r_arousal_constant']:+.2f} | "
            f"{r['mean_kl']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/4q-dev")
    parser.add_argument("--config", default="small")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config overrides (as for pipelines.experiment)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="default: cache/real_music/<config>[-<overrides hash>]")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    config = apply_overrides(load_config(args.config), [*args.overrides, f"seeds={args.seeds}"])
    name = Path(args.config).stem + (f"-{files.fingerprint(args.overrides)[:8]}"
                                     if args.overrides else "")
    workdir = args.workdir or args.cache_dir / "real_music" / name
    settings = experiment.ExperimentSettings(
        config=config, data_dir=args.data_dir, workdir=workdir, separator="spleeter4",
        cache_dir=args.cache_dir, clip_seconds=CLIP_SECONDS, iterations=args.iterations,
        workers=args.workers)
    start = time.perf_counter()
    preprocess(args.data_dir, PreprocessConfig.for_clip("spleeter4", CLIP_SECONDS,
                                                        config.spectrogram),
               args.cache_dir, args.workers)
    preprocessed = time.perf_counter()
    result = experiment.run_experiment(settings)
    done = time.perf_counter()
    rows = rows_of(result)
    files.write_json(workdir / "real_music.json", {
        "data_dir": str(args.data_dir), "config": args.config, "overrides": args.overrides,
        "iterations": args.iterations, "seeds": args.seeds, "clip_seconds": CLIP_SECONDS,
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
        "seconds": {"preprocessing (or cached)": preprocessed - start,
                    "models and evaluation (or cached stages)": done - preprocessed},
        "rows": rows, "report": str(result.report)})
    title = (f"4Q dev set, {rows[0]['songs']} songs, {args.iterations} iterations x "
             f"{args.seeds} seeds, config {name}; preprocessing {preprocessed - start:.0f} s, "
             f"models and evaluation {done - preprocessed:.0f} s (finished stages are cached)")
    files.write_text(workdir / "summary.md", f"# Real music\n\n{title}\n\n{markdown(rows)}\n\n"
                     f"Report: {result.report}\n")
    print(f"report: {result.report}")
    print(title)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
