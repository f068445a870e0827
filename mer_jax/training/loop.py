"""``train_and_evaluate``: all seeds x Monte-Carlo iterations of one input mode, as K models in one
compiled program.

The K = S x I models are ordered seed-major (model k has seed ``config.seed + k // I`` and split
``k % I``); each has its own init key, dropout stream and batch order. Side effects live here and
only here: the splits file, Orbax checkpoints under ``checkpoints/<mode>/<fingerprint>/`` (resumed
from the latest step automatically, never across a changed fingerprint), the JSON-lines metrics
log, the loss-curve figure, per-model exports and the prediction tables
``predictions/<mode>[_seed_<S>]_iteration_N.csv`` that ``mer_jax.evaluate`` reads.

The run's *fingerprint* hashes everything that made its results: the training config (seeds
included), the inputs (``FeatureStore.inputs_key``: what made the mode's spectrograms and each
song's audio), the mode, the splits and mer-jax's version. A rerun with
another fingerprint in the same workdir says what changed, removes that mode's old predictions and
exports, and trains afresh in its own checkpoint folder (``mer_jax.training.workdir``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from mer_jax import baselines, distributed, files, plots
from mer_jax.model import set_input_norm, set_output_prior
from mer_jax.predictions import table_name, write_prediction_table
from mer_jax.store import FeatureStore
from mer_jax.training import data, steps
from mer_jax.training import workdir as workdir_lib
from mer_jax.training.config import TrainConfig
from mer_jax.training.splits import store_splits


class NonFiniteError(FloatingPointError):
    """A non-finite loss or prediction; the message names the model (seed, iteration) and where."""


@dataclasses.dataclass
class RunResult:
    predictions: list[Path]
    metrics_log: Path
    steps: int
    step_seconds: float
    data_wait_fraction: float
    compilations: int                # traces of the train step (1: fixed shapes, one program)


@dataclasses.dataclass(frozen=True)
class Models:
    """The K = S x I models of a run, seed-major: model k = (seeds[k // I], splits[k % I])."""
    seeds: list[int]
    splits: list[dict]

    def __len__(self) -> int:
        return len(self.seeds) * len(self.splits)

    def seed(self, k: int) -> int:
        return self.seeds[k // len(self.splits)]

    def split(self, k: int) -> dict:
        return self.splits[k % len(self.splits)]

    def name(self, mode: str, k: int) -> str:
        """``mixed_iteration_3``, or ``mixed_seed_1_iteration_3`` when S > 1."""
        return table_name(mode, self.split(k)["iteration"],
                          self.seed(k) if len(self.seeds) > 1 else None)

    def describe(self, k: int) -> str:
        return f"seed {self.seed(k)}, iteration {self.split(k)['iteration']}"


def init_models(config: TrainConfig, models: Models, inputs: data.ModelInputs,
                labels: np.ndarray, train_idx: list[np.ndarray], learning_rate):
    """The K initial states stacked ``(K, ...)``: model k's init key is
    ``fold_in(fold_in(PRNGKey(seed), 0), iteration - 1)``; with ``model.input_norm`` its input
    standardisation, with ``model.output_prior`` its output prior (the calibrated constant) are
    fitted on its own training songs. One model at a time, as ``steps.create_states`` (a vmapped
    initialisation can deadlock XLA:CPU)."""
    states, moments = [], {}
    for k in range(len(models)):
        root = jax.random.PRNGKey(models.seed(k))
        key = jax.random.fold_in(jax.random.fold_in(root, 0), models.split(k)["iteration"] - 1)
        state = steps.create_state(config.model, inputs.shape, key, learning_rate)
        it = k % len(models.splits)
        if config.model.input_norm:
            if it not in moments:
                moments[it] = inputs.moments(train_idx[it])
            state = state.replace(params=set_input_norm(state.params, *moments[it],
                                                        floor=config.model.input_floor))
        if config.model.output_prior:
            prior = baselines.calibrated(labels[train_idx[it]])
            state = state.replace(params=set_output_prior(state.params, prior))
        states.append(state)
    return steps.stack(states)


def dropout_roots(models: Models) -> jax.Array:
    """``(K, 2)``: model k's dropout stream, ``fold_in(fold_in(PRNGKey(seed), 1), it - 1)``."""
    return jnp.stack([jax.random.fold_in(jax.random.fold_in(
        jax.random.PRNGKey(models.seed(k)), 1), models.split(k)["iteration"] - 1)
        for k in range(len(models))])


@jax.jit
def dropout_keys(roots: jax.Array, step) -> jax.Array:
    """``(K, 2)`` roots -> each model's dropout key at ``step`` (one compiled call per step)."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(roots, step)


def check_finite(losses: np.ndarray, models: Models, mode: str, step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        named = "; ".join(f"{models.describe(k)}: {losses[k]}" for k in bad[:5])
        raise NonFiniteError(f"{mode} training stopped: non-finite loss at step {step} ({named})"
                             "; lower the learning rate or check the inputs")


@dataclasses.dataclass
class Setup:
    """What a run reads: the models, their song indices into the store, inputs and labels."""
    models: Models
    train_idx: list[np.ndarray]      # per split
    test_idx: list[np.ndarray]
    inputs: data.ModelInputs
    labels: np.ndarray               # (songs in store, 4)
    steps: int
    eval_batch: int                  # songs per call: config.eval_batch, <= the largest test set

    def eval_batches(self) -> tuple[np.ndarray, np.ndarray]:
        """``(I, nb, B)`` padded test indices of each split and their mask (``data.
        padded_batches``), nb the most any split needs: a smaller test set's last are padding."""
        nb = max(math.ceil(len(t) / self.eval_batch) for t in self.test_idx)
        pairs = [data.padded_batches(t, self.eval_batch, nb) for t in self.test_idx]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def setup_run(config: TrainConfig, store: FeatureStore, mode: str, k_splits: int,
              splits_path: Path) -> Setup:
    index_of = {store.ids[i]: int(i) for i in store.done}
    splits = store_splits(splits_path, store, k_splits, config)
    train_idx = [np.array([index_of[s] for s in split["train"]]) for split in splits]
    test_idx = [np.array([index_of[s] for s in split["test"]]) for split in splits]
    steps_per_epoch = config.steps_per_epoch or math.ceil(
        max(map(len, train_idx)) / config.batch_size)
    return Setup(Models(config.seed_values, splits), train_idx, test_idx,
                 data.ModelInputs(store, mode, config.time_bins, config.log_input,
                                  time_pool=config.time_pool, spectrogram=config.spectrogram),
                 store.labels.astype(np.float32), config.epochs * steps_per_epoch,
                 # more than the largest test set would only add padding
                 min(config.eval_batch, max(len(t) for t in test_idx)))


def train_and_evaluate(config: TrainConfig, store_path: os.PathLike | str,
                       workdir: os.PathLike | str, mode: str, iterations: int | None = None,
                       progress: bool = True, splits_path: os.PathLike | str | None = None
                       ) -> RunResult:
    """Train the S x I models of ``mode`` (I = ``iterations``, default config.iterations) on their
    Monte-Carlo splits (``splits_path``, default WORKDIR/splits.json; created if missing, else
    reused), then write their predictions, exports and loss curves."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(store_path)
    splits_path = Path(splits_path or workdir / "splits.json")
    if jax.process_count() > 1:          # process 0 writes the splits, the others read them
        if distributed.is_main():
            setup_run(config, store, mode, iterations or config.iterations, splits_path)
        distributed.barrier("splits")
    run = setup_run(config, store, mode, iterations or config.iterations, splits_path)
    identity = workdir_lib.run_identity(config, store, mode, run.models.splits)
    fingerprint = workdir_lib.claim_workdir(workdir, mode, identity)
    k_models = len(run.models)
    learning_rate = steps.learning_rate(config.learning_rate, config.lr_schedule, run.steps,
                                        config.warmup_steps)
    chunk = steps.default_chunk(k_models, config.models_in_parallel, functools.partial(
        steps.model_bytes, config.model, run.inputs.shape, config.batch_size,
        run.eval_batch, learning_rate, config.loss))
    trainer = steps.MultiModel(config.model, learning_rate, config.loss, k_models, chunk)
    state = init_models(config, run.models, run.inputs, run.labels, run.train_idx, learning_rate)
    checkpoints = ocp.CheckpointManager(
        (workdir / "checkpoints" / mode / fingerprint).resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    start = checkpoints.latest_step() or 0
    if start:
        state = checkpoints.restore(start, args=ocp.args.StandardRestore(state))
    environment = workdir_lib.environment(start, trainer.chunk, trainer.padded_models)
    record = {"mode": mode, "fingerprint": fingerprint, "identity": identity,
              "config": config.to_dict(), "store": str(Path(store_path).resolve()),
              "store_config_hash": store.attrs.get("config_hash"),
              "iterations": len(run.models.splits), "seeds": run.models.seeds,
              "models": k_models, "steps": run.steps, **environment,
              "starts": workdir_lib.starts(workdir, mode, fingerprint, environment)}
    main = distributed.is_main()
    if main:
        files.write_json(workdir / f"run_{mode}.json", record)
    groups, timing = _train(config, run, mode, trainer, trainer.split(state), checkpoints, start,
                            workdir / f"metrics_{mode}.jsonl", progress)
    predictions = _write_predictions(workdir, mode, run, run.eval_batches()[0], groups, trainer)
    _export_models(workdir, mode, distributed.host_values(trainer.merge(groups).params), config,
                   run, store.attrs.get("config"), fingerprint)
    workdir_lib.finished(record, timing, train_step_compilations=trainer.compilations())
    if main:
        plots.loss_curves(workdir / f"metrics_{mode}.jsonl", workdir / f"loss_{mode}.png",
                          title=f"CRNN ({mode}): mean loss over {k_models} models")
        files.write_json(workdir / f"run_{mode}.json", record)
    distributed.barrier("trained")
    return RunResult(predictions, workdir / f"metrics_{mode}.jsonl", run.steps,
                     timing["step_seconds"], timing["data_wait_fraction"],
                     record["train_step_compilations"])


def _validation_loss(run: Setup, trainer, groups) -> np.ndarray:
    """Mean validation loss of each of the K models on its split's test songs."""
    split_of = np.arange(len(run.models)) % len(run.models.splits)     # (K,)
    indices, masks = run.eval_batches()                               # (I, nb, B) each
    total, count = np.zeros(len(run.models)), np.zeros(len(run.models))
    for b in range(indices.shape[1]):
        idx = indices[split_of, b]                                    # (K, B)
        x = np.stack([run.inputs.get(i) for i in idx])
        y = run.labels[idx]
        s, c = trainer.evaluate(groups, x, y, masks[split_of, b])
        total += np.asarray(s)
        count += np.asarray(c)
    return total / count


def _train(config, run: Setup, mode, trainer, groups, checkpoints, start, log_path,
           progress) -> tuple[list, dict]:
    """Steps [start, run.steps) of every model; returns the trained groups and timings."""
    models = run.models
    n_splits = len(models.splits)
    load_seconds = run.inputs.preload(np.concatenate(run.train_idx + run.test_idx))
    batches = data.TrainBatches(
        run.inputs, run.labels, [run.train_idx[k % n_splits] for k in range(len(models))],
        config.batch_size, [(models.seed(k), models.split(k)["iteration"])
                            for k in range(len(models))], start, run.steps, config.prefetch,
        crop=config.crop_bins, mixup_alpha=config.mixup)
    log = workdir_lib.MetricsLog(log_path, start, enabled=distributed.is_main())
    bar = tqdm(total=run.steps, initial=start, unit="step", disable=not progress,
               desc=f"training {len(models)} x {mode}")
    step_time, timed_steps = 0.0, 0
    roots = dropout_roots(models)
    try:
        for step, (x, y) in zip(range(start, run.steps), batches):
            began = time.perf_counter()
            rngs = np.asarray(dropout_keys(roots, step))
            groups, metrics = trainer.train(groups, x, y, rngs)
            losses = np.asarray(metrics["loss"])
            check_finite(losses, models, mode, step + 1)
            if step > start:  # the first step of a process includes compilation
                step_time += time.perf_counter() - began
                timed_steps += 1
            log.write(step=step + 1, kind="train", loss=losses.tolist())
            if (step + 1) % config.eval_every == 0 or step + 1 == run.steps:
                log.write(step=step + 1, kind="val",
                          loss=_validation_loss(run, trainer, groups).tolist())
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == run.steps:
                log.flush()
                save_checkpoint(checkpoints, step + 1,
                                distributed.host_values(trainer.merge(groups)))
            bar.set_postfix(loss=f"{losses.mean():.4f}")
            bar.update()
    finally:
        batches.close()
        bar.close()
        log.close()
    checkpoints.wait_until_finished()
    mean_step = step_time / max(timed_steps, 1)
    return groups, {"step_seconds": mean_step, "data_wait_seconds": batches.wait_seconds,
                    "data_wait_fraction": batches.wait_seconds / max(
                        step_time + batches.wait_seconds, 1e-9),
                    "input_load_seconds": load_seconds, "inputs_in_memory": run.inputs.cached}


def save_checkpoint(checkpoints: ocp.CheckpointManager, step: int, state) -> None:
    """Save the stacked state of every model as ``step`` and wait until it is finalized: a run
    killed after this returns resumes from ``step``."""
    checkpoints.save(step, args=ocp.args.StandardSave(state))
    checkpoints.wait_until_finished()


def _write_predictions(workdir, mode, run: Setup, idx, groups, trainer) -> list[Path]:
    """idx: (I, batches, B) padded test indices of each split (see data.padded_batches)."""
    models, n_splits = run.models, len(run.models.splits)
    outputs = []
    for b in range(idx.shape[1]):
        x = np.stack([run.inputs.get(idx[k % n_splits, b]) for k in range(len(models))])
        outputs.append(np.asarray(trainer.predict(groups, x)))
    stacked = np.concatenate(outputs, axis=1)                # (K, nb * B, 4)
    paths = []
    for k in range(len(models)):
        split = models.split(k)
        n = len(split["test"])
        values = stacked[k, :n].astype(np.float64)
        bad = [song for song, row in zip(split["test"], values) if not np.all(np.isfinite(row))]
        if bad:
            raise NonFiniteError(f"{mode} model ({models.describe(k)}): non-finite predictions "
                                 f"for songs {bad[:10]}")
        path = workdir / "predictions" / f"{models.name(mode, k)}.csv"
        if distributed.is_main():
            write_prediction_table(path, split["test"], run.labels[run.test_idx[k % n_splits]],
                                   {mode: values})
        paths.append(path)
    return paths


def _export_models(workdir, mode, params, config, run: Setup, preprocessing,
                   fingerprint) -> None:
    """One folder per trained model: ``models/<name>/{params, model.json}`` (name as its
    prediction table); model.json (written last, atomically) holds what ``mer_jax.predict`` needs
    and the run's fingerprint: an export of another fingerprint is replaced."""
    checkpointer = ocp.StandardCheckpointer()
    models = run.models
    for k in range(len(models)):
        folder = (workdir / "models" / models.name(mode, k)).resolve()
        meta = folder / "model.json"
        if meta.is_file() and json.loads(meta.read_text()).get("fingerprint") == fingerprint:
            continue
        checkpointer.save(folder / "params", jax.tree_util.tree_map(lambda x: x[k], params),
                          force=True)
        checkpointer.wait_until_finished()
        if distributed.is_main():
            files.write_json(meta, {
                "mode": mode, "iteration": models.split(k)["iteration"], "seed": models.seed(k),
                "input_shape": list(run.inputs.shape), "config": config.to_dict(),
                "preprocess": preprocessing, "fingerprint": fingerprint})
