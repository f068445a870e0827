"""The main job behind `make demo`: the paper's experiment on the embedded synthetic dataset.

    python -m pipelines.demo --shared ../shared --workdir cache/demo

1. Reproduces the paper's Tables 1-2 from the authors' own per-song predictions
   (shared/data/paper_predictions). Expected: "Paper Tables 1-2 reproduced: yes".
2. Generates the default dataset (synthetic multi-stem songs rated by simulated annotator
   panels; 72 songs x 10 s, seed 0).
3. Runs the whole experiment (CRNN with configs/small.py and Random Forest, mixed vs sep,
   10 Monte-Carlo iterations) twice: with the true stems ("oracle") and with the default
   separator ("spleeter4"), the mixed results shared between the two. This answers the paper's
   open question (§6): does separation help when the stems are perfect?
4. Writes WORKDIR/summary.md (both runs side by side, and spleeter4's SDR against the true stems)
   and prints its path on the last line. About 12 minutes on a 2-core CPU; a rerun skips what is
   done.
"""
from __future__ import annotations

import argparse
import csv
import functools
import sys
from pathlib import Path

import numpy as np

from mer_jax.data.synth import SynthConfig, write_dataset
from mer_jax.runtime import run_command
from mer_jax.separation import STEM_ORDER
from mer_jax.separation.quality import track_sdr
from mer_jax.store import FeatureStore
from mer_jax.training.config import load_config
from pipelines import experiment, reproduce_paper

REPO = Path(__file__).resolve().parents[1]


def separation_sdr(oracle_store: Path, estimate_store: Path, songs: int = 20) -> np.ndarray:
    """Median over songs of the per-stem SDR of ``estimate_store``'s stems vs the true ones."""
    truth, estimate = FeatureStore(oracle_store), FeatureStore(estimate_store)
    both = sorted(set(truth.done) & set(estimate.done))[:songs]
    values = [track_sdr(truth.array("sep/stems")[i], estimate.array("sep/stems")[i]) for i in both]
    return np.nanmedian(np.stack(values), axis=0)


def _mean_e(path: Path) -> dict[str, float]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in ("E_mixed", "E_sep")} | {
        "significant": sum(float(r["W_mixed_sep"]) < 0.05 for r in rows if r["W_mixed_sep"]),
        "iterations": len(rows)}


def write_summary(workdir: Path, runs: dict[str, Path], sdr: np.ndarray) -> Path:
    lines = ["# Does separation help? Mixed vs separated inputs on the synthetic default dataset",
             "", "Mean KL over the Monte-Carlo iterations (lower is better); *significant*: "
             "iterations with Wilcoxon p < 0.05.", "",
             "| model | E mixed | E sep (true stems) | E sep (spleeter4) |", "|---|---|---|---|"]
    for model, table in (("CRNN", "table1_crnn.csv"), ("RF", "table2_rf.csv")):
        oracle = _mean_e(runs["oracle"] / "report" / table)
        spleeter = _mean_e(runs["spleeter4"] / "report" / table)
        lines.append(f"| {model} | {oracle['E_mixed']:.3f} | {oracle['E_sep']:.3f} "
                     f"({oracle['significant']}/{oracle['iterations']} significant) | "
                     f"{spleeter['E_sep']:.3f} ({spleeter['significant']}/"
                     f"{spleeter['iterations']} significant) |")
    lines += ["", "Verdicts (computed from the numbers, see each report):", ""]
    for name, work in runs.items():
        text = (work / "report" / "report.md").read_text().split("## Conclusion", 1)[1]
        bullets = [line for line in text.splitlines() if line.startswith("- ")][:2]
        lines += [f"- separator **{name}**:"] + [f"  {b}" for b in bullets]
    lines += ["", "spleeter4 on the synthetic songs, SDR (dB) against the true stems, median "
              "over songs: " + ", ".join(f"{s} {v:.2f}" for s, v in zip(STEM_ORDER, sdr)), "",
              "Reports: " + ", ".join(f"[{n}]({(w / 'report' / 'report.md').resolve()})"
                                     for n, w in runs.items()), ""]
    path = workdir / "summary.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--workdir", type=Path, default=Path("cache/demo"))
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "small.py")
    parser.add_argument("--songs", type=int, default=72)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="preprocessing processes")
    args = parser.parse_args(argv)

    code = reproduce_paper.main(["--predictions-dir", str(args.shared / "data" / "paper_predictions"),
                                 "--out", str(args.workdir / "paper_tables")])

    synth = SynthConfig(n=args.songs, seconds=args.seconds, seed=args.seed)
    data_dir = args.workdir / f"synth-n{synth.n}-s{synth.seconds:g}-seed{synth.seed}"
    print(f"\nDefault dataset: {synth.n} synthetic songs x {synth.seconds:g} s (seed {synth.seed})")
    write_dataset(data_dir, synth)
    config = load_config(args.config)
    runs: dict[str, Path] = {}
    stores: dict[str, Path] = {}
    for separator in ("oracle", "spleeter4"):
        print(f"\nExperiment with separator {separator}")
        settings = experiment.ExperimentSettings(
            config=config, data_dir=data_dir, workdir=args.workdir / separator,
            separator=separator, cache_dir=args.cache_dir, clip_seconds=args.seconds,
            iterations=args.iterations, workers=args.workers)
        result = experiment.run_experiment(settings, reuse_mixed_from=runs.get("oracle"))
        runs[separator], stores[separator] = settings.workdir, result.store
        print(f"report: {result.report.resolve()}")
    sdr = separation_sdr(stores["oracle"], stores["spleeter4"])
    summary = write_summary(args.workdir, runs, sdr)
    print("\n" + summary.read_text())
    print(f"summary: {summary.resolve()}")
    return code


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
