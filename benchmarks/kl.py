"""Benchmark: the per-song KL over 10^6 songs, ours (pure JAX) vs the authors' matrix formulation.

    python benchmarks/kl.py [--songs 1000000] [--repeats 5] [--json]

ours     mer_jax.kl.kl_from_tables: the diagonal-Gaussian KL, elementwise, one jitted call on
         (songs, 4) tables;
tf       the paper's Equation 1 as the authors computed it, with 2x2 covariance matrices in
         TensorFlow (tf.linalg: inverse, matmul, trace, determinant), batched over songs - needs
         the benchmark-only extra ``pip install -e '.[bench]'``;
numpy    the same matrix formulation in NumPy (np.linalg), for reference.
Reported: median seconds over --repeats after a warm-up call, the ratio to ours, and the largest
relative difference from ours (all float64 inputs; ours runs in float32 as in the pipeline).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def _median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def matrices(table: np.ndarray):
    """(songs, 4) -> means (songs, 2, 1), covariances (songs, 2, 2)."""
    return table[:, :2, None], np.einsum("si,ij->sij", table[:, 2:] ** 2, np.eye(2))


def numpy_matrix_kl(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    mu1, s1 = matrices(truth)
    mu2, s2 = matrices(prediction)
    inv2 = np.linalg.inv(s2)
    diff = mu2 - mu1
    quad = (np.transpose(diff, (0, 2, 1)) @ inv2 @ diff)[:, 0, 0]
    trace = np.trace(inv2 @ s1, axis1=1, axis2=2)
    return 0.5 * (quad + trace - np.log(np.linalg.det(s1) / np.linalg.det(s2)) - 2)


def tf_matrix_kl():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    @tf.function
    def kl(mu1, s1, mu2, s2):
        inv2 = tf.linalg.inv(s2)
        diff = mu2 - mu1
        quad = tf.linalg.matmul(tf.linalg.matmul(diff, inv2, transpose_a=True), diff)[:, 0, 0]
        trace = tf.linalg.trace(tf.linalg.matmul(inv2, s1))
        return 0.5 * (quad + trace - tf.math.log(tf.linalg.det(s1) / tf.linalg.det(s2)) - 2.0)

    return kl, tf.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import jax
    import jax.numpy as jnp
    from mer_jax.kl import kl_from_tables
    rng = np.random.default_rng(0)
    truth = np.concatenate([rng.uniform(0, 1, (args.songs, 2)),
                            rng.uniform(0.02, 0.3, (args.songs, 2))], axis=1)
    prediction = np.concatenate([rng.uniform(0, 1, (args.songs, 2)),
                                 rng.uniform(0.02, 0.3, (args.songs, 2))], axis=1)
    t32, p32 = jnp.asarray(truth, jnp.float32), jnp.asarray(prediction, jnp.float32)
    ours = np.asarray(kl_from_tables(t32, p32), np.float64)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus", "songs": args.songs,
              "ours_s": _median_seconds(lambda: kl_from_tables(t32, p32).block_until_ready(),
                                        args.repeats), "jax": jax.__version__}
    reference = numpy_matrix_kl(truth, prediction)
    result["numpy_matrix_s"] = _median_seconds(lambda: numpy_matrix_kl(truth, prediction),
                                               args.repeats)
    result["max_rel_diff_numpy"] = float(np.max(np.abs(ours - reference) / reference))
    try:
        kl, version = tf_matrix_kl()
    except ImportError:
        result["tf"] = "not installed (pip install -e '.[bench]')"
    else:
        import tensorflow as tf
        args_tf = [tf.constant(a) for pair in (matrices(truth), matrices(prediction))
                   for a in pair]
        values = kl(*args_tf).numpy()
        result.update(tf=version, tf_matrix_s=_median_seconds(lambda: kl(*args_tf).numpy(),
                                                              args.repeats),
                      max_rel_diff_tf=float(np.max(np.abs(ours - values) / values)))
        result["ratio_tf_over_ours"] = result["tf_matrix_s"] / result["ours_s"]
    result["ratio_numpy_over_ours"] = result["numpy_matrix_s"] / result["ours_s"]
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
