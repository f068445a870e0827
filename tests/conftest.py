"""Shared fixtures: the read-only real data in ../shared/data (never copied into the project).

One JAX persistent compilation cache per test session, shared by the xdist workers and every
subprocess they start (the environment carries it): the many tiny models that different tests
and CLI runs build compile once per session. Created fresh for the session and removed after,
so nothing carries over between runs; results are the same with or without it.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MER_JAX_SHARED", REPO.parent / "shared")).resolve()
CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"


def pytest_configure(config):
    if hasattr(config, "workerinput") or CACHE_VARIABLE in os.environ:
        return              # an xdist worker (it inherited the controller's), or set by the user
    config._mer_jax_cache = tempfile.mkdtemp(prefix="mer-jax-xla-cache-")
    os.environ[CACHE_VARIABLE] = config._mer_jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"


def pytest_unconfigure(config):
    if getattr(config, "_mer_jax_cache", None):
        shutil.rmtree(config._mer_jax_cache, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    data = SHARED / "data"
    if not data.is_dir():
        pytest.fail(f"the shared test data is missing: {data} (set MER_JAX_SHARED)")
    return data


@pytest.fixture(scope="session")
def pmemo_mini(shared_data) -> Path:
    return shared_data / "PMEmo2019-mini"


@pytest.fixture(scope="session")
def emomusic_mini(shared_data) -> Path:
    return shared_data / "emomusic-mini"


@pytest.fixture(scope="session")
def paper_predictions(shared_data) -> Path:
    return shared_data / "paper_predictions"


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A real feature store (oracle stems) of 16 synthetic 3-second songs."""
    from mer_jax.data.synth import SynthConfig, write_dataset
    from mer_jax.preprocess import PreprocessConfig, preprocess
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root / "synth", SynthConfig(n=16, seconds=3.0, seed=7), workers=1,
                  progress=False)
    return preprocess(root / "synth", PreprocessConfig.for_clip("oracle", 3.0), root / "cache",
                      progress=False)


TINY_OVERRIDES = [  # the paper's topology at minimal widths, for fast tests
    "model.conv_channels=[[4, 4], [4, 4], [8, 8], [8, 8], [8, 8]]",
    "model.lstm_units=[8, 8, 8]", "model.dense_units=[8, 8, 8]", "time_bins=128",
    "iterations=2", "epochs=1", "seeds=1"]


def tiny_train_config():
    """configs/small.py at TINY_OVERRIDES' widths: 2 iterations, 1 epoch, 1 seed."""
    from mer_jax.training.config import apply_overrides, load_config
    return apply_overrides(load_config("configs/small.py"), TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_config():
    return tiny_train_config()


def tiny_model():
    """The tests' one small CRNN (configs/small.py at TINY_OVERRIDES' widths: input norm, output
    prior, softplus stds, dropout 0.1): every test that builds a model uses it, so its
    initialisation (12 s of XLA compilation) is compiled once per session and input shape."""
    return tiny_train_config().model
