"""The main job behind `make demo`: the paper's experiment on the embedded synthetic dataset.

    python -m pipelines.demo --shared ../shared --workdir cache/demo

1. Reproduces the paper's Tables 1-2 from the authors' own per-song predictions
   (shared/data/paper_predictions). Expected: "Paper Tables 1-2 reproduced: yes".
2. Generates the default dataset (synthetic multi-stem songs rated by simulated annotator
   panels; 72 songs x 10 s, seed 0).
3. Runs the whole experiment (CRNN with configs/small.py and Random Forest, mixed vs sep,
   3 Monte-Carlo iterations x the config's 3 model seeds; the forests try 20% of the features
   per split to fit the time budget) twice: with the true stems ("oracle") and with the default
   separator ("spleeter4"), the mixed results shared between the two. Every model is scored
   beside the constant and calibrated-constant baselines; a mixed-vs-sep verdict is given only
   where both inputs' models passed the skill gate. This asks the paper's open question (§6):
   does separation help when the stems are perfect?
4. Writes WORKDIR/summary.md (both runs side by side: KL, baselines, skill gate, Pearson r,
   verdicts, spleeter4's SDR against the true stems) and prints its path on the last line.
   About 20 minutes on the 2-core reference CPU (README.md and BENCHMARKS.md have the measured
   times); a rerun skips what is done.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from mer_jax import forest, report, verdict
from mer_jax.data.synth import SynthConfig, write_dataset
from mer_jax.files import write_text
from mer_jax.runtime import run_command
from mer_jax.separation import STEM_ORDER
from mer_jax.separation.quality import track_sdr
from mer_jax.store import FeatureStore
from mer_jax.training.config import load_config
from pipelines import experiment, reproduce_paper



def separation_sdr(oracle_store: Path, estimate_store: Path, songs: int = 20) -> np.ndarray:
    """Median over songs of the per-stem SDR of ``estimate_store``'s stems vs the true ones."""
    truth, estimate = FeatureStore(oracle_store), FeatureStore(estimate_store)
    both = sorted(set(truth.done) & set(estimate.done))[:songs]
    values = [track_sdr(truth.array("sep/stems")[i], estimate.array("sep/stems")[i]) for i in both]
    return np.nanmedian(np.stack(values), axis=0)


def _model_lines(model: str, results: dict) -> list[str]:
    """Table rows of one model: E, skill gate and Pearson r per input and separator."""
    lines = []
    for separator, result in results.items():
        evaluation = result.evaluations[model]
        summary = report.summarize(model, evaluation)
        for name in ("mixed", "sep"):
            if name == "mixed" and separator != "oracle":
                continue
            skill = summary.skills[name]
            seeds = [np.mean(list(verdict.per_song({it: v[name] for it, v in kl.items()},
                                                   evaluation.songs).values()))
                     for kl in evaluation.kl_by_seed.values()]
            label = name if name == "mixed" else f"sep ({separator})"
            lines.append(
                f"| {model} | {label} | {skill.mean_kl:.3f} (seeds {min(seeds):.3f}-"
                f"{max(seeds):.3f}) | {skill.mean_kl_calibrated:.3f} / "
                f"{skill.mean_kl_constant:.3f} | {skill.p:.2g} | "
                f"{'learned' if skill.learned else '**did not learn**'} | "
                f"{_r_cells(verdict.correlation(evaluation, name))} |")
    return lines


def _r_cells(c: verdict.Correlation) -> str:
    """"model r valence / arousal | the constant's", a model's r in bold where its partial r
    given the training mean is not significantly above 0 (``verdict.correlation``)."""
    model = [f"{r:+.2f}" if above else f"**{r:+.2f}**" for r, above in zip(c.r, c.above_constant)]
    return " / ".join(model) + " | " + " / ".join(f"{r:+.2f}" for r in c.r_constant)


def write_summary(workdir: Path, results: dict, sdr: np.ndarray) -> Path:
    """``results``: separator -> ExperimentResult."""
    first = next(iter(results.values())).evaluations["CRNN"]
    lines = ["# Does separation help? Mixed vs separated inputs on the synthetic default dataset",
             "", f"{len(first.songs)} Monte-Carlo iterations x {len(first.seeds)} model seeds. "
             "KL: per-song KL averaged over seeds and iterations, then over songs (lower is "
             "better); baselines: the calibrated constant / the constant fitted on each "
             "iteration's training songs; p: one-sided Wilcoxon over songs that the model's KL is "
             "lower than the calibrated constant's (the skill gate, p < 0.05); r: Pearson r over "
             "songs of the predicted valence / arousal means (each song's prediction averaged "
             "over seeds and iterations), beside the constant's pooled the same way (typically "
             "negative: each iteration's constant, its training mean, moves against the "
             "held-out songs' labels); in bold where the model's r shows no skill beyond its "
             "training mean (its partial r given the constant's prediction is not significantly "
             "above 0; see each report).", "",
             "| model | input | KL (range over seeds) | KL baselines | p | skill gate | r valence "
             "/ arousal | r constant |", "|---|---|---|---|---|---|---|---|"]
    for model in ("CRNN", "RF"):
        lines += _model_lines(model, results)
    lines += ["", "Verdicts (computed from the numbers, see each report):", ""]
    for name, result in results.items():
        text = result.report.read_text().split("## Conclusion", 1)[1]
        verdicts = [line.split("Verdict: ", 1)[1] for line in text.splitlines()
                    if line.startswith("- ") and "Verdict: " in line]
        lines += [f"- separator **{name}**: CRNN: {verdicts[0]} RF: {verdicts[1]}"]
    lines += ["", "spleeter4 on the synthetic songs, SDR (dB) against the true stems, median "
              "over songs: " + ", ".join(f"{s} {v:.2f}" for s, v in zip(STEM_ORDER, sdr)), "",
              "Reports: " + ", ".join(f"[{n}]({r.report.resolve()})" for n, r in results.items()),
              ""]
    path = workdir / "summary.md"
    write_text(path, "\n".join(lines))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--workdir", type=Path, default=Path("cache/demo"))
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--config", type=Path, default=Path("small"),
                        help="a get_config() file, or a bundled config by name (default small)")
    parser.add_argument("--songs", type=int, default=72)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=3,
                        help="Monte-Carlo iterations (x the config's 3 seeds)")
    parser.add_argument("--rf-max-features", type=float, default=0.2,
                        help="Random Forest features per split (the paper: all; 0.2 keeps the "
                             "demo within its time)")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing processes")
    args = parser.parse_args(argv)

    code = reproduce_paper.main(["--predictions-dir",
                                 str(args.shared / "data" / "paper_predictions"),
                                 "--out", str(args.workdir / "paper_tables")])

    synth = SynthConfig(n=args.songs, seconds=args.seconds, seed=args.seed)
    data_dir = args.workdir / f"synth-n{synth.n}-s{synth.seconds:g}-seed{synth.seed}"
    print(f"\nDefault dataset: {synth.n} synthetic songs x {synth.seconds:g} s (seed {synth.seed})")
    write_dataset(data_dir, synth)
    config = load_config(args.config)
    results: dict[str, experiment.ExperimentResult] = {}
    for separator in ("oracle", "spleeter4"):
        print(f"\nExperiment with separator {separator}")
        settings = experiment.ExperimentSettings(
            config=config, data_dir=data_dir, workdir=args.workdir / separator,
            separator=separator, cache_dir=args.cache_dir, clip_seconds=args.seconds,
            iterations=args.iterations, workers=args.workers,
            forest=forest.ForestConfig(max_features=args.rf_max_features))
        result = experiment.run_experiment(
            settings, reuse_from=args.workdir / "oracle" if results else None)
        results[separator] = result
        print(f"report: {result.report.resolve()}")
    sdr = separation_sdr(results["oracle"].store, results["spleeter4"].store)
    summary = write_summary(args.workdir, results, sdr)
    print("\n" + summary.read_text())
    print(f"summary: {summary.resolve()}")
    return code


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
