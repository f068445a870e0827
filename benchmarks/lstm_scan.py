"""Benchmark: the CRNN's LSTMs, flax's ``nn.RNN(OptimizedLSTMCell)`` vs ``mer_jax.model.LSTM``
(the same cell with the input projection of all steps hoisted out of the scan), side by side.

    python benchmarks/lstm_scan.py [--units 256,128,64] [--steps 512] [--features 61]
                                   [--batch 8] [--repeats 7]

The paper's LSTM stack (256 -> 128 -> 64 over the 512 channel positions, 61 features each, batch
8): seconds of one jitted forward + backward pass (the gradient of a sum of squares with respect
to the parameters), median over ``--repeats`` calls taken alternately, after a compiling call
each. Both start from the same parameters; the largest relative gradient difference is printed
beside the times. Last line: JSON with ``ratio_flax_over_ours`` (>= 1: ours is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.model import LSTM


def stack(units: tuple[int, ...], ours: bool) -> nn.Module:
    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for k, u in enumerate(units):
                if ours:
                    carry, x = LSTM(u, name=f"lstm_{k}")(x)
                else:
                    zeros = jnp.zeros((x.shape[0], u))
                    carry, x = nn.RNN(nn.OptimizedLSTMCell(u, name=f"lstm_{k}"))(
                        x, initial_carry=(zeros, zeros), return_carry=True)
            return carry[1]
    return Stack()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", default="256,128,64")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--features", type=int, default=61)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    units = tuple(int(u) for u in args.units.split(","))
    x = jax.random.normal(jax.random.PRNGKey(1), (args.batch, args.steps, args.features))
    params = stack(units, False).init(jax.random.PRNGKey(0), x)
    grads, times, fns = {}, {"flax": [], "ours": []}, {}
    for name in times:
        model = stack(units, name == "ours")
        fns[name] = jax.jit(jax.grad(lambda p, x, m=model: jnp.sum(m.apply(p, x) ** 2)))
        grads[name] = jax.block_until_ready(fns[name](params, x))    # compiles
    for _ in range(args.repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(params, x))
            times[name].append(time.perf_counter() - start)
    diff = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)) for a, b in zip(
        jax.tree_util.tree_leaves(grads["flax"]), jax.tree_util.tree_leaves(grads["ours"])))
    seconds = {name: statistics.median(t) for name, t in times.items()}
    for name, value in seconds.items():
        print(f"{name:5s} forward + backward {value:.4f} s")
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                      "backend": jax.default_backend(), "units": units, "steps": args.steps,
                      "batch": args.batch, "seconds": {k: round(v, 4) for k, v in seconds.items()},
                      "ratio_flax_over_ours": round(seconds["flax"] / seconds["ours"], 2),
                      "max_relative_gradient_difference": diff}))


if __name__ == "__main__":
    main()
