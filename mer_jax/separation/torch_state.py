"""PyTorch state dicts (``torch.save`` files) read as NumPy arrays, without torch and without
running code from the file.

Both of torch's file formats are read: the zip archive (``<name>/data.pkl`` + one raw file per
storage in ``<name>/data/``, torch >= 1.6) and the legacy stream (magic number, protocol, system
info, the pickled object, the storage keys, then each storage as an int64 element count followed
by its bytes, torch < 1.6 - the format of released weights from 2019 such as Open-Unmix's).
The unpickler admits only what a state dict of tensors needs - ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the typed storage classes, each mapped to a local
stand-in - and refuses every other global, so a malicious file cannot execute anything.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                  "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                  "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                  "BoolStorage": np.bool_}


class TorchFileError(RuntimeError):
    """A file that is not a plain state dict of tensors (or is damaged)."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Tensor:
    """A tensor waiting for its storage's bytes: storage key, offset, size, stride (elements)."""

    def __init__(self, storage, offset, size, stride, *unused):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self, buffers: dict[str, np.ndarray]) -> np.ndarray:
        key, dtype = self.storage
        flat = buffers[key]
        if flat.dtype != dtype:
            raise TorchFileError(f"storage {key} read as {flat.dtype}, tensor wants {dtype}")
        if (len(self.size) != len(self.stride) or min((*self.size, *self.stride, self.offset),
                                                      default=0) < 0):
            raise TorchFileError(f"storage {key}: bad tensor size {self.size} / stride "
                                 f"{self.stride} / offset {self.offset}")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if 0 not in self.size and last >= flat.size:   # never read past the storage
            raise TorchFileError(f"storage {key}: a tensor of size {self.size} at offset "
                                 f"{self.offset} overruns its {flat.size} elements")
        strides = tuple(s * flat.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(flat[self.offset:], self.size, strides).copy()


class _Unpickler(pickle.Unpickler):
    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _Tensor}

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self.storages = storages   # key -> (dtype, element count), filled as they are named

    def find_class(self, module: str, name: str):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only a state dict of tensors is read") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, kind, key, _location, numel = pid[:5]
        self.storages[str(key)] = (kind.dtype, int(numel))
        return str(key), kind.dtype


def _state_dict(obj, buffers: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict) or not all(isinstance(v, _Tensor) for v in obj.values()):
        raise TorchFileError(f"{path}: not a state dict of tensors")
    return {str(k): v.materialize(buffers) for k, v in obj.items()}


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise TorchFileError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict = {}
        obj = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        buffers = {key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype, count=numel)
                   for key, (dtype, numel) in storages.items()}
    return _state_dict(obj, buffers, path)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    stream = io.BytesIO(path.read_bytes())
    if _Unpickler(stream, {}).load() != LEGACY_MAGIC:
        raise TorchFileError(f"{path}: neither a zip archive nor a torch file")
    _Unpickler(stream, {}).load()               # protocol version
    _Unpickler(stream, {}).load()               # system info (endianness, type sizes)
    storages: dict = {}
    obj = _Unpickler(stream, storages).load()
    buffers = {}
    for key in _Unpickler(stream, {}).load():   # the storages' bytes follow in this order
        dtype, numel = storages[str(key)]
        (count,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(count * dtype.itemsize)
        if count != numel or len(raw) != count * dtype.itemsize:
            raise TorchFileError(f"{path}: storage {key} is truncated")
        buffers[str(key)] = np.frombuffer(raw, dtype)
    return _state_dict(obj, buffers, path)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a state dict saved by ``torch.save``, name -> NumPy array (zip or legacy)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error) as err:
        raise TorchFileError(f"{path}: {err}") from None
