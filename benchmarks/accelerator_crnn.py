"""The CRNN sections of ``benchmarks/accelerator.py`` (its ``crnn``, ``crnn_more``, ``lstm`` and
``auto_chunk`` sections; not run on its own) and the timer all its sections use."""
from __future__ import annotations

import functools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from crnn_step import CONV, KERNELS, LSTM, forward_flops  # noqa: E402
from mer_jax import lstm  # noqa: E402
from mer_jax.training import steps  # noqa: E402
from mer_jax.training.config import apply_overrides, load_config  # noqa: E402

# K = 1 with each way of running the LSTMs (on the H200 the step took 0.07-0.08 s for ~2 ms of
# products at peak: the LSTMs' 3 x 512 dependent steps are the suspect); vmapped K > 1 with the
# convolutions looped (XLA's grouped ones measured 0.77x per model on the H200); K = 20 last:
# compiling 20 vmapped CRNNs once crashed XLA's GPU autotuner
# the evaluation forward at batch 8 and 40 with each LSTM, 160 with scan (eval_batch_size): the
# H200's batch-8 forward took 0.026 s for under 1 ms of arithmetic at its peak, and the
# validation passes were half the projected CRNN time
CRNN_FIRST = ["paper:1:1:float32", "paper:1:1:float32:cudnn", "paper:1:1:float32:wavefront",
              "paper:10:1:float32:loop", "paper:1:4:float32", "paper:1:4:float32:cudnn",
              "paper:1:4:float32:wavefront", "paper:1:1:float32:eval",
              "paper:1:1:float32:eval:b40", "paper:1:1:float32:eval:b160",
              "paper:1:1:float32:eval:cudnn", "paper:1:1:float32:eval:b40:cudnn",
              "paper:1:1:float32:eval:wavefront", "paper:1:1:float32:eval:b40:wavefront"]
# after preprocessing: new vmapped programs first (the autotuner crash left the device unusable)
CRNN_MORE = ["paper:10:1:float32:loop:wavefront", "paper:10:1:float32", "paper:1:1:bfloat16",
             "paper:10:4:float32:loop", "paper:4:1:float32:loop", "paper:20:1:float32:loop"]


def timed(fn, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``repeats`` more); results blocked on."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _flops(compiled) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


def device_peak_bytes() -> int | None:
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _is_paper(config) -> bool:
    """The topology crnn_step.forward_flops counts (the paper's)."""
    return (config.model.conv_channels, config.model.kernels, config.model.lstm_units,
            config.model.summary, config.time_bins) == (CONV, KERNELS, LSTM, "lstm", 2048)


def crnn_step(config, k: int, channels: int, repeats: int, evaluate: bool = False) -> dict:
    """One Adam step (or one evaluation call) of k models vmapped (chunk = k), on batches of
    config.batch_size songs."""
    shape = (129, config.time_bins, channels)
    lr = config.learning_rate
    trainer = steps.MultiModel(config.model, lr, config.loss, k, chunk=k)
    keys = jax.random.split(jax.random.PRNGKey(0), k)
    stacked = steps.create_states(config.model, shape, keys, lr)
    groups = trainer.split(stacked)
    x = jax.random.normal(jax.random.PRNGKey(1), (k, config.batch_size, *shape))
    y = jax.random.uniform(jax.random.PRNGKey(2), (k, config.batch_size, 4))
    rngs = jax.random.split(jax.random.PRNGKey(3), k)
    one = (lambda t: t[0]) if k == 1 else (lambda t: t)
    mask = jnp.ones((k, config.batch_size))
    start = time.perf_counter()
    compiled = (trainer.compiled_eval(groups[0], one(x), one(y), one(mask)) if evaluate
                else trainer.compiled_train(groups[0], one(x), one(y), one(rngs)))
    compile_s = time.perf_counter() - start
    if evaluate:
        first, seconds = timed(lambda: trainer.evaluate(groups, x, y, mask), repeats)
    else:
        state = {"groups": groups}

        def step():
            state["groups"], metrics = trainer.train(state["groups"], x, y, rngs)
            return metrics
        first, seconds = timed(step, repeats)
    flops = _flops(compiled)
    return {"k": k, "channels": channels, "batch": config.batch_size,
            "dtype": config.model.compute_dtype,
            "paper": _is_paper(config), "time_bins": config.time_bins,
            "kind": "eval forward" if evaluate else "train step", "compile_s": compile_s,
            "first_call_s": first,
            "step_s": seconds, "model_step_s": seconds / k,
            "xla_flops_per_step": flops, "xla_flops_per_s": flops / seconds if flops else None,
            "analytic_flops_per_s": (1 if evaluate else 3) * k
            * forward_flops(config.batch_size, channels) / seconds if _is_paper(config) else None,
            "compiled_bytes": steps.program_bytes(compiled),
            "device_peak_bytes": device_peak_bytes()}


def crnn_plan(entries: list[str]) -> list[tuple]:
    """"CONFIG:K:C:DTYPE[:eval][:bN][:loop][:LSTM]" entries (e.g. "paper:10:4:float32:loop") ->
    (config, K, channels, evaluate, vmap_conv, lstm) tuples; "bN": N songs per call instead of
    the config's batch_size; "loop": the vmapped convolutions as a loop of K
    (``MER_JAX_VMAP_CONV=loop``), else XLA's grouped ones; LSTM: how the LSTMs run
    (``MER_JAX_LSTM``: scan, the default, wavefront or cudnn)."""
    plan, known = [], {"eval", "loop", *lstm.IMPLEMENTATIONS}
    for entry in entries:
        name, k, channels, dtype, *flags = entry.split(":")
        batches = [f for f in flags if re.fullmatch(r"b[1-9]\d*", f)]
        if set(flags) - known - set(batches) or len(batches) > 1:
            raise ValueError(f"{entry}: unknown flags {sorted(set(flags) - known - set(batches))}"
                             f" or more than one batch flag {batches}")
        config = apply_overrides(load_config(name), [f"model.compute_dtype={dtype}"] + [
            f"batch_size={batches[0][1:]}" for _ in batches])
        lstms = [f for f in flags if f in lstm.IMPLEMENTATIONS] or ["scan"]
        plan.append((config, int(k), int(channels), "eval" in flags,
                     "loop" if "loop" in flags else "grouped", lstms[-1]))
    return plan


def crnn(plan: list, repeats: int, log) -> None:
    """Measure each (config, K, channels, evaluate, vmap_conv, lstm) of ``plan`` within the
    budget."""
    from mer_jax.kernels.conv import VMAP_VARIABLE
    for cfg, k, channels, evaluate, vmap_conv, lstms in plan:
        name = (f"crnn K={k} C={channels} {cfg.model.compute_dtype}{' eval' if evaluate else ''}"
                f" batch {cfg.batch_size} {vmap_conv} {lstms}")
        if log.over_budget(name):
            break
        os.environ[VMAP_VARIABLE] = vmap_conv      # both read when the step is traced
        os.environ[lstm.VARIABLE] = lstms
        try:
            log.note("crnn", {**crnn_step(cfg, k, channels, repeats, evaluate),
                              "vmap_conv": vmap_conv, "lstm": lstms})
        except Exception as err:  # noqa: BLE001 - e.g. out of memory: a result, not the end
            log.error(name, err)
        finally:
            os.environ.pop(VMAP_VARIABLE, None)
            os.environ.pop(lstm.VARIABLE, None)


def lstm_section(repeats: int) -> dict:
    """benchmarks/lstm_scan.py in a child process (cuDNN failing there cannot leave this
    process's device unusable): its JSON, or its exit status and error's end."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "lstm_scan.py"),
                           "--repeats", str(repeats)], capture_output=True, text=True,
                          cwd=REPO, timeout=180,   # this process holds most of the device
                          env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"returncode": done.returncode, "stderr_tail": done.stderr[-600:],
                "seconds": {}, "errors": {"all": "lstm_scan.py failed"}}
    return json.loads(lines[-1])


def runnable(plan: list, log) -> list:
    """``plan`` without its cudnn entries when the lstm section found cuDNN's LSTM failing (or
    did not run it on this backend): one failure is enough evidence, and a CUDA error can leave
    the process's device unusable for the entries after it."""
    found = log.result.get("lstm")
    if found is None or "cudnn" in found.get("seconds", {}):
        return plan
    kept = [entry for entry in plan if entry[5] != "cudnn"]
    if len(kept) < len(plan):
        why = found.get("errors", {}).get("cudnn", f"not run on {jax.default_backend()}")
        log.result["skipped"].append(f"{len(plan) - len(kept)} cudnn crnn entries ({why})")
    return kept


def auto_chunk(config, k: int) -> dict:
    shape = (129, config.time_bins, 1)
    bytes_fn = functools.partial(steps.model_bytes, config.model, shape, config.batch_size,
                                 config.eval_batch, config.learning_rate, config.loss)
    return {"models": k, "models_in_parallel": steps.default_chunk(k, "auto", bytes_fn),
            "per_model_bytes": bytes_fn(), "free_device_bytes": steps.free_device_bytes()}
