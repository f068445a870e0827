"""A workdir's bookkeeping, per input mode: the run record ``run_<mode>.json``, the fingerprint
that keys checkpoints and results, and the JSON-lines metrics log.

``run_<mode>.json`` holds the run's identity (everything hashed into its fingerprint), the
environment of its latest start at top level (git commit, "+dirty" with uncommitted changes;
jax, backend, convolution and LSTM kernels, devices, ...) and ``starts``: one entry per start of
the same run, oldest first, each with the step it resumed from, its environment, and, when it
finished, its timings. A resumed start whose code, jax, backend, kernels or model grouping
differ from the previous start's is said on stdout: its models are then not bit for bit those
of an uninterrupted run (the same functions up to float rounding).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import jax

from mer_jax import __version__, distributed, files, lstm
from mer_jax.kernels import conv
from mer_jax.runtime import malloc_status
from mer_jax.store import FeatureStore
from mer_jax.training.config import TrainConfig

# what, changed between starts, makes a resumed run's models differ from an uninterrupted run's
# (at float level: the same functions, other kernels or programs)
RESUME_KEYS = ("git_commit", "jax", "backend", "convolutions", "lstm", "models_in_parallel")


def git_commit(package: Path = Path(__file__).resolve().parent) -> str:
    """HEAD of the git checkout the code runs from, with "+dirty" when tracked files differ from
    it (the commit alone would not make the results); "unknown" outside a checkout, e.g. an
    installed wheel (also one installed into a venv inside the checkout: untracked there)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=package,
                              check=True).stdout.strip()
    try:
        git("ls-files", "--error-unmatch", ".")          # the package's files are tracked
        commit = git("rev-parse", "HEAD")
        dirty = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def run_identity(config: TrainConfig, store: FeatureStore, mode: str, splits: list[dict]) -> dict:
    """Everything that makes a run's results (hashed into its fingerprint), as plain JSON."""
    return json.loads(json.dumps({
        "config": config.to_dict(), "inputs": store.inputs_key(f"{mode}/spectrogram", splits),
        "mode": mode, "splits": splits, "mer_jax": __version__}))


def claim_workdir(workdir: Path, mode: str, identity: dict) -> str:
    """The run's fingerprint. When ``run_<mode>.json`` holds another one, say what changed and
    remove that mode's predictions and exports (their checkpoints stay in their own folder)."""
    fingerprint = files.fingerprint(identity)
    record = workdir / f"run_{mode}.json"
    if record.is_file():
        old = json.loads(record.read_text())
        if old.get("fingerprint") != fingerprint and distributed.is_main():
            changed = files.changed_keys(old.get("identity", {}), identity) or ["(older format)"]
            print(f"{workdir}: the {mode} run there was made with other settings "
                  f"(changed: {', '.join(changed[:8])}); training afresh")
            for path in (workdir / "predictions").glob(f"{mode}_*iteration_*.csv"):
                path.unlink()
            for path in (workdir / "models").glob(f"{mode}_*iteration_*"):
                shutil.rmtree(path)
    return fingerprint


def environment(start: int, models_in_parallel: int, models_computed: int) -> dict:
    """This start's environment, for the run record: the step it resumed from (0: a fresh
    start), the code, jax and backend, the kernels, the memory allocator and the model layout."""
    return {"resumed_from_step": start, "git_commit": git_commit(), "jax": jax.__version__,
            "backend": jax.default_backend(), "convolutions": conv.status(),
            "lstm": lstm.status(), "malloc": malloc_status(),
            "models_in_parallel": models_in_parallel, "models_computed": models_computed,
            "devices": jax.device_count(), "processes": jax.process_count()}


def finished(record: dict, timing: dict, **more) -> None:
    """Add a finished start's timings (and ``more``) to the record and to its last start."""
    record.update(timing, **more)
    record["starts"][-1].update(timing, **more, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def starts(workdir: Path, mode: str, fingerprint: str, start: dict) -> list[dict]:
    """The run's starts, this one (``start``: its step and environment) last: the earlier ones
    from ``run_<mode>.json`` when it records the same fingerprint (a resumed run), else none.
    Says so when a resumed start's setup (RESUME_KEYS) differs from the previous start's."""
    record = workdir / f"run_{mode}.json"
    earlier = []
    if record.is_file():
        old = json.loads(record.read_text())
        if old.get("fingerprint") == fingerprint:
            earlier = old.get("starts") or [{k: old.get(k) for k in
                                             ("resumed_from_step", *RESUME_KEYS)}]
    # a start that died before its first checkpoint is redone from the same step: keep both
    changed = [f"{k}: {earlier[-1].get(k)} -> {start[k]}" for k in RESUME_KEYS
               if earlier and start.get("resumed_from_step") and earlier[-1].get(k) != start[k]]
    if changed and distributed.is_main():
        print(f"{workdir}: resuming the {mode} run at step {start['resumed_from_step']} in another "
              f"setup ({'; '.join(changed)}): its models equal an uninterrupted run's only up "
              "to float rounding")
    return [*earlier, {**start, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]


class MetricsLog:
    """JSON lines; on resume, rows after the restored step are dropped (they will be redone).
    ``enabled=False`` (the other processes of a multi-host run) writes nothing."""

    def __init__(self, path: Path, resume_step: int, enabled: bool = True):
        self.path = path
        self._file = None if enabled else open(os.devnull, "a")
        if not enabled:
            return
        rows = []
        if path.is_file() and resume_step > 0:
            rows = [r for r in map(json.loads, path.read_text().splitlines())
                    if r["step"] <= resume_step]
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        self._file = open(path, "a")

    def write(self, **row) -> None:
        self._file.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        self._file.flush()
        if self._file.name != os.devnull:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
