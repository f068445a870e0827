"""Pure training and evaluation steps, and their multi-model form.

``train_step(state, batch, rng) -> (state, metrics)`` is one Adam step of one model.
``over_models(fn, k, chunk)`` maps any such function over a leading model axis of size k: chunks
of ``chunk`` models are vmapped together and the chunks run one after another (``lax.map``) inside
the same compiled program. chunk = k is a plain vmap (fast on accelerators); chunk = 1 runs the
models sequentially, which on XLA:CPU is as fast per model as separate runs and needs the scratch
memory of one model only.
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax

from mer_jax.kl import kl_from_tables
from mer_jax.model import CRNN, ModelConfig

KL_MIN_STD = 1e-3   # std floor inside the Gaussian-KL training loss (a linear head can go <= 0)


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def make_optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


def create_state(model_config: ModelConfig, input_shape, rng, learning_rate: float) -> TrainState:
    from mer_jax.model import init_params
    params = init_params(model_config, input_shape, rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=make_optimizer(learning_rate).init(params))


def loss_value(prediction: jnp.ndarray, target: jnp.ndarray, loss: str,
               weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean loss over the batch: MSE over the 4 targets, or the Gaussian KL[target || prediction]."""
    if loss == "mse":
        per_song = jnp.mean(jnp.square(prediction - target), axis=-1)
    else:
        per_song = kl_from_tables(target, prediction, min_std=KL_MIN_STD)
    if weights is None:
        return jnp.mean(per_song)
    return jnp.sum(per_song * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def train_step(state: TrainState, batch: tuple, rng: jax.Array, *, model_config: ModelConfig,
               learning_rate: float, loss: str) -> tuple[TrainState, dict]:
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


def predict(params: dict, x: jnp.ndarray, *, model_config: ModelConfig) -> jnp.ndarray:
    """``(B, freq, time, C)`` -> ``(B, 4)`` without dropout."""
    return CRNN(model_config).apply({"params": params}, x, train=False)


def eval_loss(params: dict, batch: tuple, *, model_config: ModelConfig, loss: str):
    """(summed loss, count) over a masked batch (x, y, mask (B,))."""
    x, y, mask = batch
    prediction = predict(params, x, model_config=model_config)
    return loss_value(prediction, y, loss, mask) * jnp.sum(mask), jnp.sum(mask)


def over_models(fn, models: int, chunk: int):
    """Map ``fn`` (all arguments and outputs pytrees) over a leading axis of ``models``."""
    if models % chunk:
        raise ValueError(f"{models} models cannot be split in chunks of {chunk}")
    vectorized = jax.vmap(fn)
    if chunk == models:
        return vectorized

    def mapped(*args):
        grouped = jax.tree_util.tree_map(
            lambda a: a.reshape(models // chunk, chunk, *a.shape[1:]), args)
        out = jax.lax.map(lambda group: vectorized(*group), grouped)
        return jax.tree_util.tree_map(lambda a: a.reshape(models, *a.shape[2:]), out)

    return mapped


def default_chunk(models: int) -> int:
    """1 on CPU (sequential inside one program), all models on GPU/TPU."""
    return models if jax.default_backend() != "cpu" else 1


def compiled_steps(model_config: ModelConfig, learning_rate: float, loss: str, models: int,
                   chunk: int):
    """The jitted multi-model (train, eval, predict) functions; state is donated to train."""
    train = functools.partial(train_step, model_config=model_config,
                              learning_rate=learning_rate, loss=loss)
    evaluate = functools.partial(eval_loss, model_config=model_config, loss=loss)
    forward = functools.partial(predict, model_config=model_config)
    return (jax.jit(over_models(train, models, chunk), donate_argnums=0),
            jax.jit(over_models(evaluate, models, chunk)),
            jax.jit(over_models(forward, models, chunk)))
