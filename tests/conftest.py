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
