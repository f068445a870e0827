"""Benchmark: the CRNN's stacked LSTMs, flax's ``nn.RNN(OptimizedLSTMCell)`` against the ways
``mer_jax.lstm`` runs them (``MER_JAX_LSTM``), side by side.

    python benchmarks/lstm_scan.py [--units 256,128,64] [--steps 512] [--features 61]
                                   [--batch 8] [--repeats 7] [--only flax scan ...]

The paper's LSTM stack (256 -> 128 -> 64 over the 512 channel positions, 61 features each, batch
8): seconds of one jitted forward + backward pass (the gradient of a sum of squares with respect
to the parameters), median over ``--repeats`` calls taken in turn, after a compiling call each.
  flax       nn.RNN(nn.OptimizedLSTMCell) per layer
  scan       mer_jax.lstm, layer after layer, the input projection hoisted (the default)
  wavefront  mer_jax.lstm, all layers in one scan of T + L - 1 steps
  cudnn      mer_jax.lstm through cuDNN (CUDA GPUs only; left out elsewhere)
All start from the same parameters; the largest relative gradient difference from flax's is
printed beside each time; one that fails is reported (``errors``) and the others measured. Last
line: JSON (``speedup_over_flax``: > 1 is faster than flax).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mer_jax import lstm  # noqa: E402

IMPLEMENTATIONS = ("flax", *lstm.IMPLEMENTATIONS)


def stack(units: tuple[int, ...], flax_cells: bool) -> nn.Module:
    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            if not flax_cells:
                return lstm.stack(x, lstm.stack_weights(units, x.shape[-1]))
            for k, u in enumerate(units):
                zeros = jnp.zeros((x.shape[0], u))
                carry, x = nn.RNN(nn.OptimizedLSTMCell(u, name=f"lstm_{k}"))(
                    x, initial_carry=(zeros, zeros), return_carry=True)
            return carry[1]
    return Stack()


def measure(units=(256, 128, 64), steps=512, features=61, batch=8, repeats=7,
            only=IMPLEMENTATIONS) -> dict:
    """Seconds of one forward + backward pass per implementation (cudnn only on a GPU), each
    one's largest relative gradient difference from flax's, and its speed-up over flax."""
    only = [n for n in only if n != "cudnn" or jax.default_backend() == "gpu"]
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, steps, features))
    params = stack(units, True).init(jax.random.PRNGKey(0), x)
    grads, fns, errors = {}, {}, {}
    reference = jax.grad(lambda p: jnp.sum(stack(units, True).apply(p, x) ** 2))(params)
    for name in only:
        model = stack(units, name == "flax")
        fn = jax.jit(jax.grad(lambda p, x, m=model: jnp.sum(m.apply(p, x) ** 2)))
        os.environ[lstm.VARIABLE] = "scan" if name == "flax" else name   # read when traced
        try:
            grads[name] = jax.block_until_ready(fn(params, x))           # compiles
            fns[name] = fn
        except Exception as err:  # noqa: BLE001 - e.g. cuDNN failing: a result, not the end
            errors[name] = f"{type(err).__name__}: {str(err)[:300]}"
        finally:
            os.environ.pop(lstm.VARIABLE)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(params, x))
            times[name].append(time.perf_counter() - start)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    diff = {name: max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)) for a, b in zip(
        jax.tree_util.tree_leaves(reference), jax.tree_util.tree_leaves(g)))
        for name, g in grads.items()}
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "backend": jax.default_backend(), "units": list(units), "steps": steps,
            "batch": batch, "seconds": {k: round(v, 5) for k, v in seconds.items()},
            "speedup_over_flax": ({k: round(seconds["flax"] / v, 2) for k, v in seconds.items()}
                                  if "flax" in seconds else None),
            "max_relative_gradient_difference": diff, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", default="256,128,64")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--features", type=int, default=61)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=list(IMPLEMENTATIONS),
                        choices=IMPLEMENTATIONS)
    args = parser.parse_args()
    result = measure(tuple(int(u) for u in args.units.split(",")), args.steps, args.features,
                     args.batch, args.repeats, args.only)
    for name, value in result["seconds"].items():
        print(f"{name:9s} forward + backward {value:.4f} s   gradient vs flax "
              f"{result['max_relative_gradient_difference'][name]:.1e}")
    for name, error in result["errors"].items():
        print(f"{name:9s} failed: {error}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
