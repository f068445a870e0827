"""Benchmark: K models in one compiled program vs K models trained one after another.

    python benchmarks/multi_model.py [--config configs/small.py] [--k 2 4 10] [--steps 5] [--json]

For each K, ways to advance K models (own parameters, own batches) by one Adam step:
  sequential         K calls of a plain single-model jitted step (the baseline),
  multimodel_chunk1  the trainer's CPU default: MultiModel with groups of 1 model (one compiled
                     vmapped program called K times on stacked groups),
  vmapped            MultiModel with one group of K models (the accelerator default),
  lax_map            one program mapping the models one after another (lax.map): shown for
                     the record, it is the slowest on XLA:CPU.
Each variant runs in a fresh process (all with the huge-page malloc of mer_jax.runtime, as the
commands run); reported: seconds per model-step (median over --steps after one warm-up step),
the ratio to sequential, and the process's peak RSS. Then a real training run
(train_and_evaluate on a synthetic store, K = 4) reports how long the step loop waited for data.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_variant(config_path: str, variant: str, k: int, steps_n: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mer_jax.training import steps
    from mer_jax.training.config import load_config

    config = load_config(config_path)
    shape = (129, config.time_bins, 1)
    trees = [steps.create_state(config.model, shape, jax.random.PRNGKey(i), config.learning_rate)
             for i in range(k)]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 1, (k, config.batch_size, *shape)), jnp.float32)
    y = jnp.asarray(rng.uniform(0, 1, (k, config.batch_size, 4)), jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(1), k)
    if variant == "sequential":
        single = jax.jit(lambda s, b, r: steps.train_step(
            s, b, r, model_config=config.model, learning_rate=config.learning_rate,
            loss=config.loss), donate_argnums=0)
        states = trees

        def advance():
            nonlocal states
            out = [single(states[i], (x[i], y[i]), keys[i]) for i in range(k)]
            states = [o[0] for o in out]
            jax.block_until_ready([o[1]["loss"] for o in out])
    elif variant == "lax_map":  # one program mapping the models sequentially: slow on CPU
        single = functools.partial(steps.train_step, model_config=config.model,
                                   learning_rate=config.learning_rate, loss=config.loss)
        mapped = jax.jit(lambda s, b, r: jax.lax.map(lambda a: single(*a), (s, b, r)),
                         donate_argnums=0)
        state = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)

        def advance():
            nonlocal state
            state, metrics = mapped(state, (x, y), keys)
            metrics["loss"].block_until_ready()
    else:
        chunk = 1 if variant == "multimodel_chunk1" else k
        trainer = steps.MultiModel(config.model, config.learning_rate, config.loss, k, chunk)
        groups = trainer.split(jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees))

        def advance():
            nonlocal groups
            groups, metrics = trainer.train(groups, x, y, keys)
            metrics["loss"].block_until_ready()
    start = time.perf_counter()
    advance()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps_n):
        start = time.perf_counter()
        advance()
        times.append(time.perf_counter() - start)
    return {"variant": variant, "k": k, "first_step_s": round(first, 2),
            "per_model_step_s": statistics.median(times) / k,
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def data_wait(config_path: str) -> dict:
    from mer_jax.data.synth import SynthConfig, write_dataset
    from mer_jax.preprocess import PreprocessConfig, preprocess
    from mer_jax.training.config import apply_overrides, load_config
    from mer_jax.training.loop import train_and_evaluate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "synth", SynthConfig(n=40, seconds=4.0, seed=3), progress=False)
        store = preprocess(tmp / "synth", PreprocessConfig.for_clip("oracle", 4.0), tmp / "cache",
                           workers=2, progress=False)
        config = apply_overrides(load_config(config_path), ["epochs=2"])
        result = train_and_evaluate(config, store, tmp / "work", "sep", iterations=4,
                                    progress=False)
    return {"data_wait_fraction": round(result.data_wait_fraction, 4),
            "step_s_k4_sep": round(result.step_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/small.py")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4, 10])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--variants", nargs="+",
                        default=["sequential", "multimodel_chunk1", "vmapped", "lax_map"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.config, args.child[0], int(args.child[1]), args.steps)))
        return
    import jax
    rows = []
    for k in args.k:
        for variant in args.variants:
            out = subprocess.run([sys.executable, __file__, "--config", args.config, "--steps",
                                  str(args.steps), "--child", variant, str(k)],
                                 capture_output=True, text=True, cwd=REPO)
            if out.returncode:
                rows.append({"variant": variant, "k": k, "error": out.stderr.strip()[-300:]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for row in rows:
        base = next((r for r in rows if r["k"] == row["k"] and r["variant"] == "sequential"
                     and "per_model_step_s" in r), None)
        if base and "per_model_step_s" in row:
            row["speed_vs_sequential"] = round(base["per_model_step_s"] / row["per_model_step_s"], 2)
            row["per_model_step_s"] = round(row["per_model_step_s"], 4)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
              "backend": jax.default_backend(), "config": args.config, "rows": rows,
              **data_wait(args.config)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['machine']}, backend {result['backend']}, config {args.config}")
    print(f"{'K':>3} {'variant':>11} {'s/model-step':>13} {'vs seq':>7} {'peak RSS GB':>12}")
    for row in rows:
        if "error" in row:
            print(f"{row['k']:>3} {row['variant']:>11}  failed: {row['error']}")
        else:
            print(f"{row['k']:>3} {row['variant']:>11} {row['per_model_step_s']:>13.4f} "
                  f"{row.get('speed_vs_sequential', 1.0):>7.2f} {row['peak_rss_gb']:>12.2f}")
    print(f"data wait in a real run (K=4, sep): {100 * result['data_wait_fraction']:.2f}% of "
          f"step time ({result['step_s_k4_sep']} s/step)")


if __name__ == "__main__":
    from mer_jax.runtime import run_command
    run_command(main)          # as our commands run: glibc's huge-page malloc (children inherit it)
