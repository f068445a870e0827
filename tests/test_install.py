"""mer-jax installed as a wheel (a batch node's install): no checkout, bundled configs by name."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mer_jax.training.config import bundled_configs, load_config

REPO = Path(__file__).resolve().parents[1]


def test_bundled_configs_resolve_by_name():
    assert {"paper", "small"} <= set(bundled_configs())
    assert load_config("paper") == load_config(REPO / "configs" / "paper.py")
    assert load_config("small") == load_config("configs/small.py")
    with pytest.raises(FileNotFoundError, match=r"config not found: nope .*'paper'"):
        load_config("nope")


@pytest.mark.slow
def test_a_non_editable_install_works_without_the_checkout(tmp_path):
    """``pip install .`` (here: the wheel it builds, installed into a bare folder and run from
    elsewhere): the commands run and ``--config paper`` finds the bundled config."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("mer_jax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"configs/paper.py", "configs/small.py", "mer_jax/kernels/onednn_conv.cc",
            "pipelines/preprocess.py", "mer_jax/features/model_input.py"} <= names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-c", "import mer_jax, configs; "
                            "print(mer_jax.__file__); print(configs.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert all(line.startswith(str(target)) for line in where.stdout.split())
    dry = subprocess.run([sys.executable, "-m", "mer_jax.train", "--config", "paper", "--mode",
                          "mixed", "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    assert dry.stdout.strip().splitlines()[-1] == "params: 5966116"
