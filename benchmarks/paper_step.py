"""Benchmark: one Adam train step of the paper's full-size CRNN (batch 8) on this machine.

    python benchmarks/paper_step.py [--mode mixed|sep] [--steps 3] [--json]

Reports the first step (compilation included), the median of the following steps and the
process's peak RSS; used for the run-time estimates of the full reproduction in the README.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.training import steps
from mer_jax.training.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/paper.py")
    parser.add_argument("--mode", choices=("mixed", "sep"), default="mixed")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = load_config(args.config)
    shape = (129, config.time_bins, 1 if args.mode == "mixed" else 4)
    trainer = steps.MultiModel(config.model, config.learning_rate, config.loss, 1, 1)
    state = steps.create_state(config.model, shape, jax.random.PRNGKey(0), config.learning_rate)
    groups = trainer.split(jax.tree_util.tree_map(lambda a: a[None], state))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (1, config.batch_size, *shape)).astype(np.float32)
    y = rng.uniform(0, 1, (1, config.batch_size, 4)).astype(np.float32)
    times = []
    for k in range(args.steps + 1):
        start = time.perf_counter()
        groups, metrics = trainer.train(groups, x, y, jax.random.split(jax.random.PRNGKey(k), 1))
        metrics["loss"].block_until_ready()
        times.append(time.perf_counter() - start)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
              "backend": jax.default_backend(), "mode": args.mode, "batch": config.batch_size,
              "first_step_s": round(times[0], 1), "step_s": round(statistics.median(times[1:]), 2),
              "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
