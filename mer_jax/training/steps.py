"""Pure training and evaluation steps, and the multi-model trainer built on them.

``train_step(state, batch, rng) -> (state, metrics)`` is one Adam step of one model;
:class:`MultiModel` advances K models together with one compiled, vmapped program.
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax

from mer_jax import distributed, lstm
from mer_jax.kl import kl_from_tables
from mer_jax.model import CRNN, ModelConfig, init_params, param_shapes, predict
from mer_jax.training.config import LR_SCHEDULES

KL_MIN_STD = 1e-3   # std floor inside the Gaussian-KL training loss (a linear head can go <= 0)


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def learning_rate(peak: float, schedule: str = "constant", total_steps: int = 1,
                  warmup_steps: int = 0) -> float | optax.Schedule:
    """The learning rate: ``peak`` throughout ("constant", the paper), or a linear warm-up over
    ``warmup_steps`` then a cosine decay to 0 at ``total_steps`` ("cosine")."""
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup_steps, 1),
                                                  max(total_steps, warmup_steps + 1))
    raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, not {schedule!r}")


def make_optimizer(learning_rate: float | optax.Schedule) -> optax.GradientTransformation:
    """Adam with a constant rate (a float) or a schedule (a function of the step)."""
    return optax.adam(learning_rate)


def create_state(model_config: ModelConfig, input_shape, rng,
                 learning_rate: float | optax.Schedule) -> TrainState:
    params = init_params(model_config, input_shape, rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=make_optimizer(learning_rate).init(params))


def stack(trees):
    """K pytrees of one structure -> one pytree of ``(K, ...)`` arrays."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def create_states(model_config: ModelConfig, input_shape, keys: jax.Array,
                  learning_rate: float | optax.Schedule) -> TrainState:
    """K initial states stacked ``(K, ...)``, one per key ``(K, 2)``, made one model at a time:
    vmapped, the LSTMs' orthogonal initialisers become batched QR factorisations, and on XLA:CPU
    two of those in one program can deadlock (jaxlib 0.10.2: each waits inside the thread pool
    for work queued behind it; ``benchmarks/cpu_qr_deadlock.py``)."""
    return stack([create_state(model_config, input_shape, key, learning_rate) for key in keys])


def loss_value(prediction: jnp.ndarray, target: jnp.ndarray, loss: str,
               weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean loss over the batch: MSE over the 4 targets, or Gaussian KL[target || prediction]."""
    if loss == "mse":
        per_song = jnp.mean(jnp.square(prediction - target), axis=-1)
    else:
        per_song = kl_from_tables(target, prediction, min_std=KL_MIN_STD)
    if weights is None:
        return jnp.mean(per_song)
    return jnp.sum(per_song * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def train_step(state: TrainState, batch: tuple, rng: jax.Array, *, model_config: ModelConfig,
               learning_rate: float | optax.Schedule, loss: str) -> tuple[TrainState, dict]:
    """One step: batch = (x (B, freq, time, C), y (B, 4)); rng drives dropout."""
    x, y = batch
    model = CRNN(model_config)

    def objective(params):
        prediction = model.apply({"params": params}, x, train=True, rngs={"dropout": rng})
        return loss_value(prediction, y, loss)

    value, grads = jax.value_and_grad(objective)(state.params)
    updates, opt_state = make_optimizer(learning_rate).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": value, "grad_norm": optax.tree.norm(grads)}


def eval_loss(params: dict, batch: tuple, *, model_config: ModelConfig, loss: str):
    """(summed loss, count) over a masked batch (x, y, mask (B,))."""
    x, y, mask = batch
    prediction = predict(params, x, model_config=model_config)
    return loss_value(prediction, y, loss, mask) * jnp.sum(mask), jnp.sum(mask)


MEMORY_FRACTION = 0.8     # of the devices' free memory that the vmapped models may fill


def program_bytes(compiled) -> int | None:
    """A compiled program's device memory (arguments, outputs, XLA temporaries), from its memory
    analysis; None where the backend gives none."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
               + analysis.output_size_in_bytes)


def train_step_bytes(model_config: ModelConfig, input_shape, batch_size: int,
                     learning_rate: float | optax.Schedule, loss: str) -> int | None:
    """Device memory one model's train step needs (its state, batch and XLA temporaries)."""
    state = jax.eval_shape(lambda: create_state(model_config, tuple(input_shape),
                                                jax.random.PRNGKey(0), learning_rate))
    batch = (jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.float32),
             jax.ShapeDtypeStruct((batch_size, 4), jnp.float32))
    step = jax.jit(functools.partial(train_step, model_config=model_config,
                                     learning_rate=learning_rate, loss=loss))
    return program_bytes(step.lower(state, batch, jax.random.PRNGKey(0)).compile())


def eval_bytes(model_config: ModelConfig, input_shape, batch_size: int, loss: str) -> int | None:
    """Device memory one model's evaluation call on ``batch_size`` songs needs."""
    params = param_shapes(model_config, tuple(input_shape))
    batch = (jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.float32),
             jax.ShapeDtypeStruct((batch_size, 4), jnp.float32),
             jax.ShapeDtypeStruct((batch_size,), jnp.float32))
    evaluate = jax.jit(functools.partial(eval_loss, model_config=model_config, loss=loss))
    return program_bytes(evaluate.lower(params, batch).compile())


def model_bytes(model_config: ModelConfig, input_shape, batch_size: int, eval_batch_size: int,
                learning_rate: float | optax.Schedule, loss: str) -> int | None:
    """Device memory one model needs: the larger of its train step (``batch_size`` songs) and
    its evaluation call (``eval_batch_size``); None where the backend gives none."""
    sizes = (train_step_bytes(model_config, input_shape, batch_size, learning_rate, loss),
             eval_bytes(model_config, input_shape, eval_batch_size, loss))
    return None if None in sizes else max(sizes)


def chunk_for_memory(models: int, per_model_bytes: int | None, free_bytes: int | None) -> int:
    """How many models to vmap together: as many as fit in MEMORY_FRACTION of ``free_bytes``
    (1 at least, K at most); K when either figure is unknown."""
    if not per_model_bytes or not free_bytes or free_bytes <= 0:
        return models
    return max(1, min(models, int(MEMORY_FRACTION * free_bytes // per_model_bytes)))


def free_device_bytes() -> int | None:
    """Free memory summed over the local devices (None where they do not report it, e.g. CPU)."""
    total = 0
    for device in jax.local_devices():
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        total += stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    return total


def default_chunk(models: int, setting: int | str | None = None, per_model_bytes=None) -> int:
    """Models per compiled call for TrainConfig.models_in_parallel ``setting``: None -> one per
    device (1 on one device: the measured fastest, see TrainConfig; on several devices, of one or
    more processes, each device trains its own model); "auto" -> on GPU/TPU as many as fit in the
    devices' free memory (``per_model_bytes``: a callable giving one model's bytes, called only
    there; all K when the devices do not report their memory), 1 on CPU; an int -> itself (at
    most K)."""
    if setting is None:
        return max(1, min(models, jax.device_count()))
    if setting == "auto":
        if jax.default_backend() == "cpu":
            return 1
        return chunk_for_memory(models, per_model_bytes() if per_model_bytes else None,
                                free_device_bytes())
    return max(1, min(models, int(setting)))


class MultiModel:
    """K models (one per Monte-Carlo split or seed) trained in lockstep by one compiled program.

    The program is the vmapped step of ``chunk`` models; the K models are held as ceil(K / chunk)
    stacked groups and the program is called once per group. chunk = K is one vmapped call.
    With several devices the model axis of a group is sharded over all of them: a chunk that the
    device count does not divide is raised to the next multiple, and the models are padded to whole
    groups with copies of the last model, trained alongside and dropped by :meth:`merge` (never
    silently unsharded; ``padded_models`` says how many are computed). One model per device is the
    default (chunk = 1 on one device): measured on XLA:CPU, a vmapped or ``lax.map``-ped multi-model
    step runs 2-4x slower per model than separate calls (benchmarks/multi_model.py), and on an H200
    10 vmapped paper CRNNs ran at 0.77x the per-model rate of one (benchmarks/accelerator.py; the
    vmapped convolutions become grouped ones); the group of one model reuses the single compiled
    program K times, with the scratch memory of one model: ``chunk`` bounds memory.
    """

    def __init__(self, model_config: ModelConfig, learning_rate: float | optax.Schedule, loss: str,
                 models: int, chunk: int):
        if chunk < 1 or models < 1:
            raise ValueError(f"{models} models cannot be split in groups of {chunk}")
        devices = len(jax.devices())
        if chunk > 1 and devices > 1:
            chunk = -(-chunk // devices) * devices
        if chunk > 1 and lstm.implementation() == "cudnn":
            raise ValueError(f"{lstm.VARIABLE}=cudnn runs one model per compiled call, not "
                             f"{chunk} vmapped (models_in_parallel=1, on one device)")
        self.models, self.chunk = models, chunk
        self.padded_models = -(-models // chunk) * chunk
        self.sharding = _model_sharding(chunk)
        train = functools.partial(train_step, model_config=model_config,
                                  learning_rate=learning_rate, loss=loss)
        evaluate = functools.partial(eval_loss, model_config=model_config, loss=loss)
        forward = functools.partial(predict, model_config=model_config)
        # a group of one model is the plain single-model program (no model axis at all)
        batched = jax.vmap if chunk > 1 else (lambda fn: fn)
        self._train = jax.jit(batched(train), donate_argnums=0)
        self._eval = jax.jit(batched(evaluate))
        self._predict = jax.jit(batched(forward))

    def compiled_train(self, group, x, y, rngs):
        """The compiled train step of one group (for its cost and memory analyses): ``x``,
        ``y``, ``rngs`` of one group, (chunk, ...) leaves (no model axis when chunk = 1)."""
        return self._train.lower(group, self._place((x, y)), self._place(rngs)).compile()

    def compiled_eval(self, group, x, y, mask):
        """The compiled evaluation call of one group (as :meth:`compiled_train`)."""
        return self._eval.lower(group.params, self._place((x, y, mask))).compile()

    def compilations(self) -> int:
        """How many times the train step was traced and compiled (1 with fixed shapes)."""
        return self._train._cache_size()

    def _slices(self):
        if self.chunk == 1:
            return list(range(self.models))
        return [slice(g * self.chunk, (g + 1) * self.chunk)
                for g in range(self.padded_models // self.chunk)]

    def _pad(self, tree):
        """(K, ...) leaves -> (padded_models, ...): the last model repeated."""
        extra = self.padded_models - self.models
        if not extra:
            return tree
        return jax.tree_util.tree_map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)]), tree)

    def _place(self, tree):
        if self.sharding is None:
            return tree
        return jax.device_put(distributed.host_values(tree), self.sharding)

    def split(self, stacked):
        """A stacked pytree (K, ...) -> list of K / chunk groups (chunk, ...), or of K
        single-model pytrees when chunk = 1."""
        stacked = self._pad(stacked)
        return [self._place(jax.tree_util.tree_map(lambda a: a[s], stacked))
                for s in self._slices()]

    def merge(self, groups):
        """Inverse of :meth:`split` (also for per-group outputs such as metrics), as arrays this
        process can read (gathered from the other processes' devices in a multi-host run)."""
        groups = [distributed.to_local(g) for g in groups]
        join = jnp.stack if self.chunk == 1 else jnp.concatenate
        return jax.tree_util.tree_map(lambda *a: join(a)[:self.models], *groups)

    def train(self, groups: list, x, y, rngs) -> tuple[list, dict]:
        """One step of every model: x (K, B, ...), y (K, B, 4), rngs (K, 2)."""
        x, y, rngs = self._pad((x, y, rngs))
        out = [self._train(g, self._place((x[s], y[s])), self._place(rngs[s]))
               for g, s in zip(groups, self._slices())]
        return [o[0] for o in out], self.merge([o[1] for o in out])

    def evaluate(self, groups: list, x, y, mask):
        """(summed loss (K,), count (K,)) over one masked batch per model."""
        x, y, mask = self._pad((x, y, mask))
        out = [self._eval(g.params, self._place((x[s], y[s], mask[s])))
               for g, s in zip(groups, self._slices())]
        return self.merge(out)

    def predict(self, groups: list, x):
        """(K, B, 4) predictions of one batch per model x (K, B, ...)."""
        x = self._pad(x)
        return self.merge([self._predict(g.params, self._place(x[s]))
                           for g, s in zip(groups, self._slices())])


def _model_sharding(chunk: int):
    """Shard the model axis over all devices when there are several (the chunk is a multiple of
    their number, see MultiModel)."""
    devices = jax.devices()
    if len(devices) < 2 or chunk % len(devices):
        return None
    mesh = jax.sharding.Mesh(devices, ("models",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("models"))
