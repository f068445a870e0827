"""Process settings: glibc's malloc on transparent huge pages for long CPU runs, and CPU-only
child processes beside an accelerator (:func:`cpu_only_children`).

XLA:CPU allocates all of an execution's temporaries as one block (1.75 GB for the paper CRNN's
train step at batch 8) on one of its worker threads. glibc serves a block that large with a fresh
``mmap`` and unmaps it when the step ends, so the next step faults all of it in again, 4 KiB at a
time (846,000 minor faults per step measured with the earlier 3.24 GB block); with the
current block that cost 0.4 s of a 5.1 s step on the 2-core reference machine (BENCHMARKS.md).
With glibc's ``glibc.malloc.hugetlb=1`` tunable, malloc asks for transparent huge pages on those
mappings (``madvise``), and the same memory takes about a thousand 2 MiB faults.

glibc reads tunables only when a process starts, so the command-line entry points re-execute
themselves once with the tunable added to ``GLIBC_TUNABLES`` (``run_command``, which their
``__main__`` blocks and console commands call; importing never does); ``malloc_environment()``
gives the same environment for subprocesses. ``MER_JAX_MALLOC=system`` turns this off. Elsewhere
than Linux with glibc it does nothing; with glibc older than 2.35 the tunable is unknown and
ignored.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Callable, Mapping

TUNABLES_VARIABLE = "GLIBC_TUNABLES"
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb"
HUGEPAGE_MALLOC = f"{HUGEPAGE_TUNABLE}=1"
OPT_OUT_VARIABLE = "MER_JAX_MALLOC"        # "system": leave malloc as it is


def _applies(env: Mapping[str, str]) -> bool:
    return (env.get(OPT_OUT_VARIABLE, "hugepages") != "system" and platform.system() == "Linux"
            and platform.libc_ver()[0] == "glibc")


def malloc_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the huge-page malloc tunable added, when it
    applies; other tunables are kept, and a ``glibc.malloc.hugetlb`` the user set is left as is."""
    env = dict(os.environ if env is None else env)
    tunables = env.get(TUNABLES_VARIABLE, "")
    names = {item.partition("=")[0] for item in tunables.split(":")}
    if _applies(env) and HUGEPAGE_TUNABLE not in names:
        env[TUNABLES_VARIABLE] = f"{tunables}:{HUGEPAGE_MALLOC}" if tunables else HUGEPAGE_MALLOC
    return env


def malloc_status() -> str:
    """This process's malloc setting, for run records: "glibc.malloc.hugetlb=1" (or whatever
    value the environment gives it), else "system default"."""
    for item in os.environ.get(TUNABLES_VARIABLE, "").split(":"):
        if item.partition("=")[0] == HUGEPAGE_TUNABLE:
            return item
    return "system default"


def reexec_with_malloc_tunables() -> None:
    """Re-execute this command (``sys.orig_argv``) with ``malloc_environment()`` unless the
    environment already has it; only for a ``__main__`` block, before any work is done. The
    process keeps its id; if the exec fails, the command goes on as it is."""
    env = malloc_environment()
    if env == dict(os.environ):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return


def run_command(main: Callable[[], int]) -> int:
    """What a command's ``__main__`` block and console script run: ``main()``, in this process
    re-executed once with the huge-page malloc. ``main`` itself stays free of it (tests call it
    in-process)."""
    reexec_with_malloc_tunables()
    return main()


@contextlib.contextmanager
def cpu_only_children():
    """Processes started inside see ``JAX_PLATFORMS=cpu``: on a GPU/TPU host they never
    initialise the accelerator (each would preallocate most of a GPU's memory; a TPU admits one
    process). The parent's own JAX is already configured and keeps its platform."""
    saved = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("JAX_PLATFORMS", None)
        else:
            os.environ["JAX_PLATFORMS"] = saved
