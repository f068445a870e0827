"""Benchmark: the paper's CRNN in the authors' stack (tf.keras, oneDNN) vs ours (Flax), side by side.

    python benchmarks/crnn_step.py [--json] [--channels 1 4] [--steps 3] [--batch 8]
                                   [--repeats 3] [--no-xla] [--no-system-malloc]

Needs the benchmark-only extra: ``pip install -e '.[bench]'`` (tensorflow-cpu; never a runtime
dependency). For each channel count (1 = "mixed", 4 = "sep"), each of these runs in a fresh
process on the same random batch shape:
  tf        the authors' Keras model (Conv2D/MaxPooling2D/Dropout blocks, Permute, 3 LSTMs,
            Dense; the same 5,966,116 parameters for 1 channel), Adam 1e-4, MSE, eager
            ``train_on_batch`` without XLA (``jit_compile=False``), as the authors ran it;
  jax       ours: the Flax CRNN with the oneDNN convolution kernels (mer_jax.kernels);
  jax_system_malloc, tf_hugepage_malloc
            ours with glibc's default malloc (``MER_JAX_MALLOC=system``), TensorFlow with the
            huge-page malloc our commands use: what that setting gives each stack; left out with
            --no-system-malloc;
  jax_xla   ours with ``MER_JAX_CONV=xla`` (XLA's own convolutions; the baseline before the
            kernels), left out with --no-xla.
Ours runs in the environment our commands give themselves (``mer_jax.runtime``: glibc's
huge-page malloc), TensorFlow in the caller's environment, as the authors ran it.
tf and jax run --repeats times each, alternately (tf, jax, tf, jax, ...), so that both see the
same state of the machine; the others once. Reported per stack: forward (inference) seconds and
train-step seconds (in each process the median over --steps after a warm-up call; over processes
the median, each process's train step listed too), achieved GFLOP/s (analytic count:
convolutions, LSTMs and dense layers; a train step counted as 3x the forward) and the processes'
largest peak RSS. Printed last: one JSON object with ``ratio_tf_over_jax_train_step`` (TF
seconds / our seconds, 1 channel; >= 1 means we are at least as fast) and the same for 4 channels
and for the forward pass. The model's input is the
precomputed (129, 2048, C) spectrogram in both stacks (the authors' in-model STFT and Resizing
layers are excluded: this project computes them once at preprocessing).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CONV = ((64, 32), (128, 64), (256, 128), (512, 256), (1024, 512))
KERNELS = (5, 5, 5, 5, 3)
LSTM = (256, 128, 64)
DENSE = (512, 256, 64, 4)
FREQ, TIME = 129, 2048


def forward_flops(batch: int, channels: int) -> float:
    """Multiply-adds x 2 of one forward pass (convolutions, LSTMs, dense layers)."""
    flops, h, w, c = 0.0, FREQ, TIME, channels
    for (wide, narrow), k in zip(CONV, KERNELS):
        h, w = h - k + 1, w - k + 1
        flops += 2 * batch * h * w * wide * (k * k * c + narrow)
        h, w, c = h // 2, w // 2, narrow
    steps, features = c, w                      # the LSTMs run over the channel axis
    for units in LSTM:
        flops += 2 * batch * steps * 4 * units * (features + units)
        features = units
    for units in DENSE:
        flops += 2 * batch * features * units
        features = units
    return flops


def _time(call, steps: int) -> tuple[float, float]:
    """(first call seconds, median of the next ``steps``)."""
    times = []
    for _ in range(steps + 1):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times[0], statistics.median(times[1:])


def run_tf(channels: int, batch: int, steps: int, x, y) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from keras import layers
    inputs = keras.Input((FREQ, TIME, channels))
    h = inputs
    for (wide, narrow), k in zip(CONV, KERNELS):
        h = layers.Conv2D(wide, k, activation="relu")(h)
        h = layers.Conv2D(narrow, 1, activation="relu")(h)
        h = layers.MaxPooling2D(2)(h)
        h = layers.Dropout(0.1)(h)
    h = layers.Reshape((h.shape[2], h.shape[3]))(h)
    h = layers.Permute((2, 1))(h)
    h = layers.LSTM(LSTM[0], return_sequences=True)(h)
    h = layers.LSTM(LSTM[1], return_sequences=True)(h)
    h = layers.LSTM(LSTM[2])(h)
    for units in DENSE[:-1]:
        h = layers.Dense(units, activation="relu")(h)
    model = keras.Model(inputs, layers.Dense(DENSE[-1])(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse", jit_compile=False)
    infer = tf.function(lambda v: model(v, training=False))
    first_fwd, fwd = _time(lambda: infer(x).numpy(), steps)
    first, step = _time(lambda: model.train_on_batch(x, y), steps)
    return {"framework": f"tensorflow {tf.__version__}, keras {keras.__version__}",
            "params": int(model.count_params()), "forward_s": fwd, "train_step_s": step,
            "first_train_step_s": first}


def run_jax(channels: int, batch: int, steps: int, x, y) -> dict:
    import jax
    from mer_jax.kernels import conv
    from mer_jax.model import count_params, predict
    from mer_jax.training import steps as train_steps
    from mer_jax.training.config import TrainConfig
    config = TrainConfig()
    shape = (FREQ, TIME, channels)
    state = train_steps.create_state(config.model, shape, jax.random.PRNGKey(0),
                                     config.learning_rate)
    train = jax.jit(lambda s, b, r: train_steps.train_step(
        s, b, r, model_config=config.model, learning_rate=config.learning_rate,
        loss=config.loss), donate_argnums=0)
    infer = jax.jit(lambda p, v: predict(p, v, model_config=config.model))
    first_fwd, fwd = _time(lambda: infer(state.params, x).block_until_ready(), steps)
    holder = {"state": state}

    def one_step():
        holder["state"], metrics = train(holder["state"], (x, y), jax.random.PRNGKey(1))
        metrics["loss"].block_until_ready()

    first, step = _time(one_step, steps)
    return {"framework": f"jax {jax.__version__}, convolutions: {conv.status()}",
            "params": count_params(state.params), "forward_s": fwd, "train_step_s": step,
            "first_train_step_s": first}


def worker(args) -> None:
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (args.batch, FREQ, TIME, args.channels[0])).astype(np.float32)
    y = rng.uniform(0, 1, (args.batch, 4)).astype(np.float32)
    run = run_tf if args.worker == "tf" else run_jax
    result = run(args.channels[0], args.batch, args.steps, x, y)
    flops = forward_flops(args.batch, args.channels[0])
    from mer_jax.runtime import malloc_status
    result.update(malloc=malloc_status(), forward_gflops_per_s=flops / result["forward_s"] / 1e9,
                  train_gflops_per_s=3 * flops / result["train_step_s"] / 1e9,
                  peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(json.dumps(result))


def _run_worker(framework: str, overrides: dict, channels: int, args) -> dict:
    """One fresh process of one stack; its figures. Ours runs in the environment our commands
    give themselves (mer_jax.runtime); TensorFlow in this one, as the authors ran it."""
    from mer_jax.runtime import malloc_environment
    command = [sys.executable, __file__, "--worker", framework, "--channels", str(channels),
               "--steps", str(args.steps), "--batch", str(args.batch)]
    env = {**os.environ, **overrides}
    done = subprocess.run(command, capture_output=True, text=True,
                          env=malloc_environment(env) if framework == "jax" else env)
    if done.returncode != 0:
        raise SystemExit(f"{framework} {overrides} ({channels} channels) failed:\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _combine(trials: list[dict]) -> dict:
    """Figures of repeated processes: medians of the timings, the largest peak RSS, and every
    process's train step under ``train_step_s_per_process``."""
    combined = dict(trials[0])
    for key, value in trials[0].items():
        if isinstance(value, float):
            values = [trial[key] for trial in trials]
            combined[key] = max(values) if key == "peak_rss_gb" else statistics.median(values)
    combined["train_step_s_per_process"] = [trial["train_step_s"] for trial in trials]
    return combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per stack for tf and jax, run alternately")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA-convolution baseline")
    parser.add_argument("--no-system-malloc", action="store_true",
                        help="skip the run of ours with glibc's default malloc")
    parser.add_argument("--json", action="store_true",
                        help="no progress lines on stderr; the JSON object on one line")
    parser.add_argument("--worker", choices=("tf", "jax"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from mer_jax.runtime import OPT_OUT_VARIABLE, TUNABLES_VARIABLE, malloc_environment
    compared = [("tf", "tf", {}), ("jax", "jax", {})]      # (name, worker, environment overrides)
    once = []
    if not args.no_system_malloc:
        once.append(("jax_system_malloc", "jax", {OPT_OUT_VARIABLE: "system"}))
        hugepages = malloc_environment().get(TUNABLES_VARIABLE)
        if hugepages:
            once.append(("tf_hugepage_malloc", "tf", {TUNABLES_VARIABLE: hugepages}))
    if not args.no_xla:
        once.append(("jax_xla", "jax", {"MER_JAX_CONV": "xla"}))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.processor()}",
              "batch": args.batch, "steps": args.steps, "repeats": args.repeats}
    for channels in args.channels:
        schedule = compared * args.repeats + once          # tf, jax, tf, jax, ...: side by side
        trials = {name: [] for name, _, _ in schedule}
        for name, framework, overrides in schedule:
            figures = _run_worker(framework, overrides, channels, args)
            trials[name].append(figures)
            if not args.json:   # progress on stderr; stdout holds only the JSON object
                print(f"{channels} ch {name:17s} forward {figures['forward_s']:7.3f} s  train step "
                      f"{figures['train_step_s']:7.3f} s  {figures['train_gflops_per_s']:6.1f} "
                      f"GFLOP/s  peak {figures['peak_rss_gb']:.2f} GB", file=sys.stderr)
        for name, figures in trials.items():
            result[f"{name}_{channels}ch"] = _combine(figures)
        tf, ours = result[f"tf_{channels}ch"], result[f"jax_{channels}ch"]
        suffix = "" if channels == 1 else f"_{channels}ch"
        result[f"ratio_tf_over_jax_train_step{suffix}"] = tf["train_step_s"] / ours["train_step_s"]
        result[f"ratio_tf_over_jax_forward{suffix}"] = tf["forward_s"] / ours["forward_s"]
        result[f"ratio_peak_rss_jax_over_tf{suffix}"] = ours["peak_rss_gb"] / tf["peak_rss_gb"]
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
