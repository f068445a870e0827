"""Atomic file writes and fingerprints: the one home of both, imported by every side (training,
evaluation, serving) without pulling in any of them.

A reader never sees a half-written file: each writer writes a temporary file beside the target and
renames it into place (``os.replace`` is atomic on POSIX). A *fingerprint* is a short hash of
everything that made a result; a stage whose saved fingerprint differs from the current one is
redone afresh, never resumed.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str):
    """Yields a temporary path beside ``path`` (same suffix, so format-by-suffix writers work);
    what the caller writes there - a file or a folder - replaces ``path`` on success, and is
    removed on error. The parent folder is created. A folder can only replace a missing or empty
    ``path`` (POSIX rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text(path: os.PathLike | str, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path: os.PathLike | str, value) -> None:
    write_text(path, json.dumps(value, indent=1, default=str) + "\n")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".6g")
    return str(value)


def write_rows(path: os.PathLike | str, header, rows) -> None:
    """A CSV of ``header`` and ``rows`` (sequences, written as the csv module writes them)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_csv(path: os.PathLike | str, header, rows) -> None:
    """``rows``: dicts keyed by ``header``; floats at 6 significant digits, NaN as empty."""
    write_rows(path, header, ([_fmt(row[key]) for key in header] for row in rows))


def fingerprint(*parts) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: os.PathLike | str) -> str:
    """The SHA-256 of a file's bytes (64 hex digits), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (for "what changed" messages)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
