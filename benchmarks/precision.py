"""Benchmark: the bfloat16 compute mode's effect on the paper's metrics (not a test).

    python benchmarks/precision.py --store STORE [--config small] [--iterations 3] \
        [--modes mixed sep] [--workdir cache/precision] [--set KEY=VALUE ...]

Trains the config's CRNNs twice on the same splits, seeds, batches and dropout masks - once with
``model.compute_dtype="float32"`` (the default) and once with ``"bfloat16"`` - and scores both
with the evaluation the experiment uses: per input, the mean and median per-song KL, the skill
gate against the calibrated constant, then the paired difference between the two precisions
over songs (Wilcoxon p, mean and largest |KL_bf16 - KL_f32|) and the largest difference between
their predictions. The mixed-vs-sep verdict of each precision is printed when both inputs ran.
Each run lives in WORKDIR/<dtype> and resumes from its checkpoints (a finished run is not
retrained; its "train time" is then that of writing its predictions); writes
WORKDIR/precision.json and prints the Markdown table last.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402

from mer_jax import baselines, evaluate, files, stats, verdict  # noqa: E402
from mer_jax.kl import MIN_STD  # noqa: E402
from mer_jax.predictions import read_iterations  # noqa: E402
from mer_jax.store import FeatureStore  # noqa: E402
from mer_jax.training import data  # noqa: E402
from mer_jax.training.config import apply_overrides, load_config  # noqa: E402
from mer_jax.training.loop import train_and_evaluate  # noqa: E402

DTYPES = ("float32", "bfloat16")


def run(config, store: Path, workdir: Path, modes, iterations: int) -> dict:
    """Train each mode in each dtype (a finished run resumes from its last checkpoint and only
    writes its predictions again); returns {dtype: (Evaluation, seconds this call trained)}."""
    splits_path = workdir / "splits.json"
    seconds = {}
    for dtype in DTYPES:
        cfg = apply_overrides(config, [f"model.compute_dtype={dtype}"])
        start = time.perf_counter()
        for mode in modes:
            train_and_evaluate(cfg, store, workdir / dtype, mode, iterations,
                               splits_path=splits_path)
        seconds[dtype] = time.perf_counter() - start
    feature_store = FeatureStore(store)
    splits = json.loads(splits_path.read_text())["splits"]
    train_labels = baselines.training_labels_from_splits(splits, feature_store.ids,
                                                         feature_store.labels)
    out = {}
    for dtype in DTYPES:
        folder = workdir / dtype / "predictions"
        tables = read_iterations(sorted(folder.glob("*_iteration_*.csv")))
        out[dtype] = (evaluate.evaluate_iterations(tables, "true", MIN_STD, train_labels,
                                                   f"CRNN {dtype}"), seconds[dtype])
    return out


def rows_of(results: dict, modes) -> list[dict]:
    rows = []
    (e32, _), (e16, _) = results["float32"], results["bfloat16"]
    for mode in modes:
        kl32 = verdict.per_song({it: v[mode] for it, v in e32.kl.items()}, e32.songs)
        kl16 = verdict.per_song({it: v[mode] for it, v in e16.kl.items()}, e16.songs)
        a, b = (np.array([kl[s] for s in sorted(kl32)]) for kl in (kl32, kl16))
        pred_diff = max(float(np.max(np.abs(t32.predictions[mode] - t16.predictions[mode])))
                        for t32, t16 in zip(e32.tables, e16.tables))
        for dtype, evaluation, kl in (("float32", e32, a), ("bfloat16", e16, b)):
            gate = verdict.skill(evaluation, mode)
            rows.append({"input": mode, "dtype": dtype, "songs": int(kl.size),
                         "mean_kl": float(kl.mean()), "median_kl": float(np.median(kl)),
                         "calibrated_kl": gate.mean_kl_calibrated, "gate_p": gate.p,
                         "learned": gate.learned, "seconds": results[dtype][1],
                         "p_vs_f32": stats.wilcoxon_p(b, a) if dtype == "bfloat16" else None,
                         "mean_abs_dkl": float(np.mean(np.abs(b - a))),
                         "max_abs_dkl": float(np.max(np.abs(b - a))),
                         "max_abs_dprediction": pred_diff})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| input | compute | mean KL | median KL | calibrated constant | skill gate | "
             "vs float32: Wilcoxon p, mean / max abs dKL per song, max abs d prediction | "
             "train time |", "|" + "---|" * 8]
    for r in rows:
        versus = (f"p = {r['p_vs_f32']:.2g}, {r['mean_abs_dkl']:.4f} / {r['max_abs_dkl']:.4f}, "
                  f"{r['max_abs_dprediction']:.4f}" if r["p_vs_f32"] is not None else "-")
        lines.append(f"| {r['input']} | {r['dtype']} | {r['mean_kl']:.3f} | {r['median_kl']:.3f}"
                     f" | {r['calibrated_kl']:.3f} | {'learned' if r['learned'] else 'did not'}"
                     f" (p = {r['gate_p']:.2g}) | {versus} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--config", default="small")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=data.MODES, default=list(data.MODES))
    parser.add_argument("--workdir", type=Path, default=REPO / "cache" / "precision")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    config = apply_overrides(load_config(args.config), args.overrides)
    results = run(config, args.store, args.workdir, args.modes, args.iterations)
    rows = rows_of(results, args.modes)
    verdicts = {}
    if len(args.modes) == 2:
        for dtype, (evaluation, _) in results.items():
            skills = {m: verdict.skill(evaluation, m) for m in args.modes}
            verdicts[dtype] = verdict.verdict(skills, verdict.compare(evaluation))
    files.write_json(args.workdir / "precision.json", {
        "store": str(args.store), "config": args.config, "overrides": args.overrides,
        "iterations": args.iterations, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "machine": platform.machine(),
        "rows": rows, "verdicts": verdicts})
    for dtype, line in verdicts.items():
        print(f"verdict ({dtype}): {line}")
    print(f"{args.config}, {args.iterations} iterations, {jax.devices()[0].device_kind}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
