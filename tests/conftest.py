"""Shared fixtures: the read-only real data in ../shared/data (never copied into the project)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MER_JAX_SHARED", REPO.parent / "shared")).resolve()


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
