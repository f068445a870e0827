"""Reproducer: batched QR factorisations deadlock XLA:CPU (jaxlib 0.10.2, 2-core machine).

    python benchmarks/cpu_qr_deadlock.py [--timeout 30] [--calls 200]

Each case runs in its own process, with a timeout: a jitted program that draws ``n`` random
32 x 32 matrices per key and QR-factorises each (what a vmapped orthogonal initialiser does; the
CRNN's three LSTMs hold 12), for K keys vmapped, ``--calls`` times. On the 2-core reference
machine (2026-11-28) K = 9 with n = 2 deadlocked at its first call in every run, K <= 4 or n = 1
completed: in gdb both intra-op pool threads sit in jaxlib's ``QrFactorization`` kernel, inside
``ParallelBatchMap``, each waiting (``BlockingCounter::Wait``) for batch items queued on the same
pool, which has no free thread left to run them; the main thread waits in ``BlockUntilReady``.
``--xla_cpu_multi_thread_eigen=false`` did not avoid it. mer-jax therefore initialises models
one at a time (``steps.create_states``, ``loop.init_models``). Prints one line per case.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

PROGRAM = """
import sys, jax, jax.numpy as jnp
k, n, calls = map(int, sys.argv[1:])
def one(key):
    return [jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, i), (32, 32)))[0]
            for i in range(n)]
f = jax.jit(jax.vmap(one))
for c in range(calls):
    jax.block_until_ready(f(jax.random.split(jax.random.PRNGKey(c), k)))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    for k, n in ((1, 2), (4, 2), (9, 1), (9, 2), (9, 12)):
        try:
            subprocess.run([sys.executable, "-c", PROGRAM, str(k), str(n), str(args.calls)],
                           check=True, timeout=args.timeout, capture_output=True)
            outcome = f"completed {args.calls} calls"
        except subprocess.TimeoutExpired:
            outcome = f"DEADLOCKED (no end within {args.timeout:.0f} s)"
        print(f"K = {k} keys vmapped, n = {n} QRs per key: {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
