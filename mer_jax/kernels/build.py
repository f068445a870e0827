"""Compile ``onednn_conv.cc`` into a shared library, once per source / jaxlib / oneDNN version.

    python -m mer_jax.kernels.build      # prints the library's path (the Makefile runs it)

Needs a C++17 compiler (``$CXX``, default g++) and oneDNN's headers and library, which the
``onednn-cpu-gomp`` / ``onednn-devel-cpu-gomp`` wheels install into the environment's include/
and lib/. The library goes to ``$MER_JAX_KERNEL_DIR`` (default: <environment>/lib/mer_jax_kernels),
built in a temporary file and renamed, so concurrent first uses are safe.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from mer_jax.files import atomic_path

SOURCE = Path(__file__).with_name("onednn_conv.cc")


class KernelBuildError(RuntimeError):
    """The oneDNN kernels cannot be built here; the message says what is missing."""


def _prefix() -> Path:
    return Path(sys.prefix)


def _onednn_dirs() -> tuple[Path, Path]:
    include, lib = _prefix() / "include", _prefix() / "lib"
    if not (include / "oneapi" / "dnnl" / "dnnl.hpp").is_file():
        raise KernelBuildError(f"oneDNN headers not found in {include} "
                               "(pip install onednn-devel-cpu-gomp)")
    if not (lib / "libdnnl.so").exists():
        raise KernelBuildError(f"oneDNN library not found in {lib} (pip install onednn-cpu-gomp)")
    return include, lib


def library_path() -> Path:
    import jaxlib
    include, lib = _onednn_dirs()
    key = hashlib.sha256(SOURCE.read_bytes() + jaxlib.__version__.encode()
                         + os.path.realpath(lib / "libdnnl.so").encode()).hexdigest()[:16]
    folder = Path(os.environ.get("MER_JAX_KERNEL_DIR", _prefix() / "lib" / "mer_jax_kernels"))
    return folder / f"libmer_onednn-{key}.so"


def build() -> Path:
    """The compiled library's path (compiled now if missing)."""
    target = library_path()
    if target.is_file():
        return target
    include, lib = _onednn_dirs()
    with atomic_path(target) as tmp:
        _compile(tmp, include, lib)
    return target


def _compile(out: Path, include: Path, lib: Path) -> None:
    import jax
    command = [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", "-w",
               str(SOURCE), f"-I{jax.ffi.include_dir()}", f"-I{include}",
               f"-I{sysconfig.get_paths()['include']}", f"-L{lib}", "-ldnnl",
               f"-Wl,-rpath,{lib}", "-o", str(out)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelBuildError(f"no C++ compiler ({command[0]}); set $CXX") from None
    except subprocess.CalledProcessError as err:
        raise KernelBuildError(f"compiling {SOURCE.name} failed:\n{err.stderr[-2000:]}") from None


if __name__ == "__main__":
    print(build())
