"""``train_and_evaluate``: all Monte-Carlo iterations of one input mode, as K models in one program.

Side effects live here and only here: the splits file, Orbax checkpoints (resumed from the latest
step automatically), the JSON-lines metrics log, the loss-curve figure, per-model exports and the
prediction tables ``predictions/<mode>_iteration_N.csv`` that ``mer_jax.evaluate`` reads.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from mer_jax import plots
from mer_jax.kernels import conv
from mer_jax.predictions import write_prediction_table
from mer_jax.runtime import malloc_status
from mer_jax.store import FeatureStore
from mer_jax.training import data, steps
from mer_jax.training.config import TrainConfig


@dataclasses.dataclass
class RunResult:
    predictions: list[Path]
    metrics_log: Path
    steps: int
    step_seconds: float
    data_wait_fraction: float


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, k):
    return jax.tree_util.tree_map(lambda x: x[k], tree)


class MetricsLog:
    """JSON lines; on resume, rows after the restored step are dropped (they will be redone)."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = []
        if path.is_file() and resume_step > 0:
            rows = [r for r in map(json.loads, path.read_text().splitlines())
                    if r["step"] <= resume_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self._file = open(path, "a")

    def write(self, **row) -> None:
        self._file.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def train_and_evaluate(config: TrainConfig, store_path: os.PathLike | str,
                       workdir: os.PathLike | str, mode: str, iterations: int | None = None,
                       progress: bool = True, splits_path: os.PathLike | str | None = None
                       ) -> RunResult:
    """Train ``iterations`` (default: config.iterations) models of ``mode`` on their Monte-Carlo
    splits (``splits_path``, default WORKDIR/splits.json; created if missing, else reused)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(store_path)
    done = store.done
    ids = [store.ids[i] for i in done]
    index_of = {store.ids[i]: int(i) for i in done}
    k_models = iterations or config.iterations
    splits = data.load_or_create_splits(splits_path or workdir / "splits.json", ids, k_models,
                                        config.test_fraction, config.split_seed)
    train_idx = [np.array([index_of[s] for s in split["train"]]) for split in splits]
    test_idx = [np.array([index_of[s] for s in split["test"]]) for split in splits]
    inputs = data.ModelInputs(store, mode, config.time_bins, config.log_input)
    labels = store.labels.astype(np.float32)

    n_train = len(train_idx[0])
    steps_per_epoch = config.steps_per_epoch or math.ceil(n_train / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    chunk = config.models_in_parallel or steps.default_chunk(k_models)
    trainer = steps.MultiModel(config.model, config.learning_rate, config.loss, k_models, chunk)

    root_key = jax.random.PRNGKey(config.seed)
    init_keys = [jax.random.fold_in(jax.random.fold_in(root_key, 0), it) for it in range(k_models)]
    state = _stack([steps.create_state(config.model, inputs.shape, key, config.learning_rate)
                    for key in init_keys])
    dropout_key = jax.random.fold_in(root_key, 1)

    checkpoints = ocp.CheckpointManager(
        (workdir / "checkpoints" / mode).resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    start = checkpoints.latest_step() or 0
    if start:
        state = checkpoints.restore(start, args=ocp.args.StandardRestore(state))
    groups = trainer.split(state)
    del state
    log = MetricsLog(workdir / f"metrics_{mode}.jsonl", start)
    record = {"mode": mode, "config": config.to_dict(), "store": str(Path(store_path).resolve()),
              "store_config_hash": store.attrs.get("config_hash"), "iterations": k_models,
              "git_commit": git_commit(), "jax": jax.__version__, "backend": jax.default_backend(),
              "convolutions": conv.status(), "malloc": malloc_status(),
              "models_in_parallel": chunk, "steps": total_steps, "resumed_from_step": start}
    (workdir / f"run_{mode}.json").write_text(json.dumps(record, indent=1) + "\n")

    eval_batches = [data.padded_batches(t, config.batch_size) for t in test_idx]
    eval_idx = np.stack([b[0] for b in eval_batches])        # (K, nb, B)
    eval_mask = np.stack([b[1] for b in eval_batches])

    def validation_loss(groups) -> np.ndarray:
        total, count = np.zeros(k_models), np.zeros(k_models)
        for b in range(eval_idx.shape[1]):
            x = np.stack([inputs.get(eval_idx[k, b]) for k in range(k_models)])
            y = np.stack([labels[eval_idx[k, b]] for k in range(k_models)])
            s, c = trainer.evaluate(groups, x, y, eval_mask[:, b])
            total += np.asarray(s)
            count += np.asarray(c)
        return total / count

    # read every song once up front when the set fits in memory (it then stays there)
    load_seconds = inputs.preload(np.concatenate(train_idx + test_idx))
    batches = data.TrainBatches(inputs, labels, train_idx, config.batch_size,
                                [config.split_seed * 1000 + it for it in range(k_models)],
                                start, total_steps, config.prefetch)
    bar = tqdm(total=total_steps, initial=start, unit="step", disable=not progress,
               desc=f"training {k_models} x {mode}")
    step_time, timed_steps = 0.0, 0
    try:
        for step, (x, y) in zip(range(start, total_steps), batches):
            began = time.perf_counter()
            rngs = jnp.stack([jax.random.fold_in(jax.random.fold_in(dropout_key, it), step)
                              for it in range(k_models)])
            groups, metrics = trainer.train(groups, x, y, rngs)
            losses = np.asarray(metrics["loss"])
            if step > start:  # the first step of a process includes compilation
                step_time += time.perf_counter() - began
                timed_steps += 1
            log.write(step=step + 1, kind="train", loss=losses.tolist())
            if (step + 1) % config.eval_every == 0 or step + 1 == total_steps:
                log.write(step=step + 1, kind="val", loss=validation_loss(groups).tolist())
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == total_steps:
                log.flush()
                checkpoints.save(step + 1, args=ocp.args.StandardSave(trainer.merge(groups)))
                checkpoints.wait_until_finished()
            bar.set_postfix(loss=f"{losses.mean():.4f}")
            bar.update()
    finally:
        batches.close()
        bar.close()
        log.close()
    checkpoints.wait_until_finished()

    predictions = _write_predictions(workdir, mode, splits, test_idx, eval_idx, inputs, labels,
                                     groups, trainer)
    _export_models(workdir, mode, trainer.merge(groups).params, config, inputs.shape, splits,
                   store.attrs.get("config"))
    plots.loss_curves(workdir / f"metrics_{mode}.jsonl", workdir / f"loss_{mode}.png",
                      title=f"CRNN ({mode}): mean loss over {k_models} iterations")
    mean_step = step_time / max(timed_steps, 1)
    wait_fraction = batches.wait_seconds / max(step_time + batches.wait_seconds, 1e-9)
    record.update(step_seconds=mean_step, data_wait_seconds=batches.wait_seconds,
                  data_wait_fraction=wait_fraction, input_load_seconds=load_seconds,
                  inputs_in_memory=inputs.cached)
    (workdir / f"run_{mode}.json").write_text(json.dumps(record, indent=1) + "\n")
    return RunResult(predictions, workdir / f"metrics_{mode}.jsonl", total_steps, mean_step,
                     wait_fraction)


def _write_predictions(workdir, mode, splits, test_idx, idx, inputs, labels, groups,
                       trainer) -> list[Path]:
    """idx: (K, batches, B) padded test indices (see data.padded_batches)."""
    k_models = len(splits)
    outputs = []
    for b in range(idx.shape[1]):
        x = np.stack([inputs.get(idx[k, b]) for k in range(k_models)])
        outputs.append(np.asarray(trainer.predict(groups, x)))
    stacked = np.concatenate(outputs, axis=1)                # (K, nb * B, 4)
    paths = []
    for k, split in enumerate(splits):
        n = len(split["test"])
        path = workdir / "predictions" / f"{mode}_iteration_{split['iteration']}.csv"
        write_prediction_table(path, split["test"], labels[test_idx[k]],
                               {mode: stacked[k, :n].astype(np.float64)})
        paths.append(path)
    return paths


def _export_models(workdir, mode, params, config, input_shape, splits, preprocessing) -> None:
    """One folder per trained model: ``models/<mode>_iteration_N/{params, model.json}``;
    model.json holds what ``mer_jax.predict`` needs: the training and preprocessing configs."""
    checkpointer = ocp.StandardCheckpointer()
    for k, split in enumerate(splits):
        folder = (workdir / "models" / f"{mode}_iteration_{split['iteration']}").resolve()
        if (folder / "model.json").is_file():
            continue
        checkpointer.save(folder / "params", _unstack(params, k), force=True)
        checkpointer.wait_until_finished()
        (folder / "model.json").write_text(json.dumps({
            "mode": mode, "iteration": split["iteration"], "input_shape": list(input_shape),
            "config": config.to_dict(), "preprocess": preprocessing}, indent=1) + "\n")
