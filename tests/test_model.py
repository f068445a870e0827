import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_model
from mer_jax.model import CRNN, ModelConfig, count_params, init_params, param_shapes
from mer_jax.training.config import load_config


@pytest.mark.parametrize("channels, lstm_over, expected", [
    (1, "channels", 5_966_116),   # the paper's count
    (4, "channels", 5_970_916),
    (1, "time", 6_427_940),
])
def test_paper_parameter_counts(channels, lstm_over, expected):
    shapes = param_shapes(ModelConfig(lstm_over=lstm_over), (129, 2048, channels))
    assert count_params(shapes) == expected


def test_paper_config_file_is_the_paper_model():
    config = load_config("configs/paper.py")
    assert config.model == ModelConfig() and config.time_bins == 2048
    assert (config.batch_size, config.learning_rate, config.epochs, config.eval_every) == (8, 1e-4, 4, 7)


def test_small_config_keeps_the_topology_and_runs():
    config = load_config("configs/small.py")
    assert len(config.model.conv_channels) == 5 and config.model.kernels == (5, 5, 5, 5, 3)
    params = init_params(config.model, (129, config.time_bins, 4), jax.random.PRNGKey(0))
    x = jnp.ones((3, 129, config.time_bins, 4))
    out = jax.jit(lambda p, x: CRNN(config.model).apply({"params": p}, x, train=False))(params, x)
    assert out.shape == (3, 4) and jnp.all(jnp.isfinite(out))
    # the LSTMs run over the channel axis: their first input size is the time length left
    lstm_in = params["lstm_0"]["ii"]["kernel"].shape[0]
    assert lstm_in == 5  # 256 time bins -> 5 after five blocks


TINY = tiny_model()     # softplus stds, dropout 0.1, input norm and output prior


def test_softplus_head_gives_positive_stds():
    config = TINY
    params = init_params(config, (129, 128, 1), jax.random.PRNGKey(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (6, 129, 128, 1)) * 50
    out = np.asarray(jax.jit(lambda p, x: CRNN(config).apply({"params": p}, x, train=False))(params, x))
    assert np.all(out[:, 2:] > 0)


def test_wrong_frequency_size_is_a_clear_error():
    with pytest.raises(ValueError, match="129 frequency bins"):
        init_params(ModelConfig(conv_channels=((4, 4),) * 5), (200, 128, 1), jax.random.PRNGKey(0))


def test_dropout_only_in_training():
    config = TINY
    params = init_params(config, (129, 128, 1), jax.random.PRNGKey(0))
    x = jnp.ones((2, 129, 128, 1))
    train = jax.jit(lambda p, key: CRNN(config).apply({"params": p}, x, train=True,
                                                       rngs={"dropout": key}))
    test = jax.jit(lambda p, key: CRNN(config).apply({"params": p}, x, train=False,
                                                      rngs={"dropout": key}))
    assert not jnp.allclose(train(params, jax.random.PRNGKey(1)), train(params, jax.random.PRNGKey(2)))
    # evaluation ignores the dropout key: two keys, the same output, and it is no training draw
    np.testing.assert_array_equal(test(params, jax.random.PRNGKey(1)),
                                  test(params, jax.random.PRNGKey(2)))
    assert not jnp.allclose(test(params, jax.random.PRNGKey(1)), train(params, jax.random.PRNGKey(1)))


def test_fitted_input_norm_and_output_prior_are_not_trained():
    from mer_jax.model import set_input_norm, set_output_prior
    config = TINY
    assert config.input_norm and config.output_prior and config.std_activation == "softplus"
    params = init_params(config, (129, 128, 4), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    params = set_input_norm(params, rng.normal(size=(129, 4)), rng.uniform(1, 2, (129, 4)))
    prior = np.array([0.4, 0.6, 0.2, 0.25])
    params = set_output_prior(params, prior)
    x = jnp.asarray(rng.uniform(0, 3, (3, 129, 128, 4)), jnp.float32)
    apply = lambda p: CRNN(config).apply({"params": p}, x, train=False)
    grads = jax.grad(lambda p: jnp.sum(apply(p) ** 2))(params)
    for name in ("InputNorm_0", "OutputPrior_0"):
        assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree_util.tree_leaves(grads[name]))
    assert float(jnp.abs(grads["Dense_3"]["kernel"]).max()) > 0
    # a head whose outputs are 0 predicts the prior exactly
    dense = params["Dense_3"]
    zero = {**params, "Dense_3": jax.tree_util.tree_map(jnp.zeros_like, dense)}
    np.testing.assert_allclose(np.asarray(apply(zero)), np.tile(prior, (3, 1)), rtol=1e-5)


def test_input_norm_floor_keeps_empty_bins_near_zero_and_clip_bounds_outliers():
    """Half the bins nearly empty (MP3s low-passed at 11 kHz): the "median" floor blows
    their noise up to unit variance, the "peak" floor keeps it 100x smaller than the live bins';
    ``input_clip`` bounds what one outlier song shows the network."""
    import dataclasses
    from mer_jax.model import InputNorm, set_input_norm
    std = np.concatenate([np.full((64, 1), 0.5), np.full((65, 1), 1e-4)])
    mean = np.zeros((129, 1))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 129, 16, 1)) * std[None, :, None, :], jnp.float32)
    out = {}
    for floor in ("median", "peak"):
        params = set_input_norm({}, mean, std, floor=floor)["InputNorm_0"]
        out[floor] = np.asarray(InputNorm().apply({"params": params}, x))
        live = out[floor][:, :64].std()
        assert 0.8 < live < 1.2, floor          # the live bins are standardised either way
    assert 0.8 < out["median"][:, 64:].std() < 1.2   # median std 1e-4: noise at unit variance
    assert out["peak"][:, 64:].std() < 0.05          # peak floor: 0.005, noise stays ~0.02
    params = set_input_norm({}, mean, std, floor="peak")["InputNorm_0"]
    spike = x.at[0, 70, 3, 0].set(1.0)       # 1.0 / 0.005 = 200 standard deviations
    assert float(jnp.abs(InputNorm().apply({"params": params}, spike)).max()) > 150
    clipped = InputNorm(clip=5.0).apply({"params": params}, spike)
    assert float(jnp.abs(clipped).max()) == 5.0
    np.testing.assert_array_equal(np.asarray(clipped)[:, :64], out["peak"][:, :64].clip(-5, 5))
    with pytest.raises(ValueError, match="floor"):
        set_input_norm({}, mean, std, floor="mean")
    with pytest.raises(ValueError, match="input_floor"):
        dataclasses.replace(TINY, input_floor="max")
    with pytest.raises(ValueError, match="input_clip"):
        dataclasses.replace(TINY, input_clip=-1.0)


def test_pool_summary_replaces_the_lstms():
    import dataclasses
    config = dataclasses.replace(TINY, summary="pool")
    shapes = param_shapes(config, (129, 128, 1))
    assert not any(name.startswith("lstm") for name in shapes)
    assert shapes["Dense_0"]["kernel"].shape[0] == 2 * 8    # mean and max of the last 8 channels
    params = init_params(config, (129, 128, 1), jax.random.PRNGKey(0))
    apply = jax.jit(lambda p, x: CRNN(config).apply({"params": p}, x, train=False))
    for length in (128, 192):       # one set of parameters, any input length (random crops)
        out = apply(params, jnp.ones((2, 129, length, 1)))
        assert out.shape == (2, 4) and jnp.all(jnp.isfinite(out))
    with pytest.raises(ValueError, match="block 4 gets 4 time bins, needs >= 6"):
        apply(params, jnp.ones((2, 129, 64, 1)))           # 64 -> 30 -> 13 -> 4
    with pytest.raises(ValueError, match="summary must be"):
        ModelConfig(summary="attention")


def test_spectral_skip_feeds_each_bins_time_mean_and_std_to_the_head():
    import dataclasses
    config = dataclasses.replace(TINY, summary="pool", spectral_skip=True, output_prior=False)
    shapes = param_shapes(config, (129, 128, 4))
    assert shapes["Dense_0"]["kernel"].shape[0] == 2 * 8 + 2 * 129 * 4
    params = init_params(config, (129, 128, 4), jax.random.PRNGKey(0))
    # silence the convolutions: the head then sees zeros and the skip's statistics only
    params = {k: (jax.tree_util.tree_map(jnp.zeros_like, v) if k.startswith("Conv_") else v)
              for k, v in params.items()}
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 129, 128, 4))
    out = CRNN(config).apply({"params": params}, x, train=False)
    features = jnp.concatenate([jnp.zeros((2, 16)), x.mean(axis=2).reshape(2, -1),
                                x.std(axis=2).reshape(2, -1)], axis=-1)
    for k in range(len(config.dense_units)):
        dense = params[f"Dense_{k}"]
        features = jax.nn.relu(features @ dense["kernel"] + dense["bias"])
    last = params[f"Dense_{len(config.dense_units)}"]
    head = features @ last["kernel"] + last["bias"]
    np.testing.assert_allclose(out[:, :2], head[:, :2], rtol=1e-4, atol=1e-6)


def test_time_pool_mean_averages_blocks_of_frames():
    from mer_jax.features.model_input import model_input
    spectra = np.random.default_rng(0).random((2, 3, 8), np.float32)     # (C, freq, time)
    x = model_input(spectra, 2, log_input=False, time_pool="mean")
    assert x.shape == (3, 2, 2)
    np.testing.assert_allclose(x[..., 0], spectra[0].reshape(3, 2, 4).mean(-1), rtol=1e-6)
    np.testing.assert_allclose(model_input(spectra, 2, True, "mean"), np.log1p(x), rtol=1e-6)
    resized = model_input(spectra, 2, log_input=False)   # the paper's resize: 2 of every 4 frames
    np.testing.assert_allclose(resized[..., 0],
                               spectra[0][:, [1, 5]] / 2 + spectra[0][:, [2, 6]] / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 3"):
        model_input(spectra, 3, False, "mean")


@pytest.mark.parametrize("summary", ["lstm", "pool"])
def test_bfloat16_compute_keeps_float32_parameters_and_outputs(summary):
    """compute_dtype="bfloat16": the same parameters (float32), bf16 activations, a float32 head
    whose outputs stay within bf16 rounding of the float32 model's; a train step is finite and
    moves the float32 parameters."""
    import dataclasses

    from mer_jax.training.steps import create_state, train_step
    f32 = dataclasses.replace(tiny_model(), summary=summary)
    bf16 = dataclasses.replace(f32, compute_dtype="bfloat16")
    shape = (129, 128, 1)
    params = init_params(f32, shape, jax.random.PRNGKey(0))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        init_params(bf16, shape, jax.random.PRNGKey(0)))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, *shape))
    a = CRNN(f32).apply({"params": params}, x, train=False)
    b = CRNN(bf16).apply({"params": params}, x, train=False)
    assert b.dtype == jnp.float32
    assert 0 < float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a)) < 2e-2
    state = create_state(bf16, shape, jax.random.PRNGKey(0), 1e-3)
    step = jax.jit(functools.partial(train_step, model_config=bf16, learning_rate=1e-3,
                                     loss="mse"))
    new, metrics = step(state, (x, jnp.full((4, 4), 0.5)), jax.random.PRNGKey(2))
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    leaves = jax.tree_util.tree_leaves(new.params)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    with pytest.raises(ValueError, match="compute_dtype"):
        ModelConfig(compute_dtype="float16")


def test_he_init_keeps_the_signal_through_the_relus_and_starts_at_the_prior():
    """kernel_init="he": the small configs' 13 ReLU layers keep the input's scale (LeCun's
    initialisation halves the variance at each, a collapse measured on real songs), and the zero
    output layer makes a fresh model predict exactly its output prior."""
    import dataclasses
    from mer_jax.model import set_output_prior
    base = load_config("configs/small_real.py").model
    x = jax.random.normal(jax.random.PRNGKey(3), (8, 129, 128, 1))
    prior = np.array([0.4, 0.6, 0.2, 0.25])

    def spread(init):   # the last conv block's spread over songs, and the outputs
        config = dataclasses.replace(base, kernel_init=init)
        params = set_output_prior(init_params(config, (129, 128, 1), jax.random.PRNGKey(0)), prior)
        out, state = CRNN(config).apply({"params": params}, x, train=False,
                                        capture_intermediates=True, mutable=["intermediates"])
        last = state["intermediates"]["Conv_9"]["__call__"][0]
        return float(jnp.std(last, axis=0).mean()), np.asarray(out)

    lecun, lecun_out = spread("lecun")
    he, he_out = spread("he")
    assert he > 8 * lecun                      # 2 ** (10 / 2) = 32 in expectation
    np.testing.assert_allclose(he_out, np.tile(prior, (8, 1)), rtol=1e-6)
    assert np.ptp(lecun_out[:, 0]) > 0         # LeCun's output layer is random
    with pytest.raises(ValueError, match="kernel_init must be one of"):
        ModelConfig(kernel_init="xavier")
