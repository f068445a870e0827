"""Crash a command at a known point of its progress, without racing it.

    python tests/kill_after.py MODULE:ATTR N COMMAND_MODULE [ARGS...]

runs ``python -m COMMAND_MODULE ARGS`` in this process with ``MODULE.ATTR`` (a function, or a
method as ``Class.method``) wrapped so that the process SIGKILLs itself right after the N-th call
returns - a real kill -9 (no cleanup, no atexit), at a point the test chooses (e.g. after the
first song is written, after the first checkpoint is finalized).
"""
import importlib
import os
import runpy
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout (pipelines/)


def main() -> None:
    target, n, command, *args = sys.argv[1:]
    module_name, _, attr = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original, calls = getattr(owner, name), [0]

    def wrapper(*a, **k):
        result = original(*a, **k)
        calls[0] += 1
        if calls[0] >= int(n):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)
    sys.argv = [command, *args]
    runpy.run_module(command, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
