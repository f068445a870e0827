"""Source separation into the paper's four stems (vocals, bass, drums, other), chosen by name.

* ``spleeter4`` (default): Deezer's pretrained Spleeter 2-stem U-Net (vocals / accompaniment),
  ported to JAX (``spleeter``), then the accompaniment split into drums / bass / other by
  harmonic-percussive separation and a bass crossover (``accompaniment``). This departs from the
  paper's Wave-U-Net, whose 4-stem weights cannot be obtained offline.
* ``umxhq`` / ``umxl``: Open-Unmix (UMX-HQ, UMX-L) ported to JAX (``openunmix``), with the
  released weights the user downloads (``openunmix_weights``): four stems, Wiener post-filter.
* ``oracle``: the dataset's true stems - ``<root>/stems/<id>/<stem>.wav`` (the synthetic dataset)
  or ``<stem>.wav|flac`` beside the mixture (MUSDB-style folders).
* ``stems:DIR``: stems made by any tool (Demucs, Open-Unmix, the paper's Wave-U-Net...), read
  from DIR in the layouts listed in ``mer_jax.separation.stems``.

Every separator maps a clip ``(channels, n)`` at 44.1 kHz that starts ``start`` samples into the
song at ``audio_path`` to mono stems ``(4, n)`` float32 in STEM_ORDER (``start`` matters to the
oracle, which reads the same span of the true stems; prediction windows past the first have
``start > 0``).
"""
from __future__ import annotations

import argparse
import functools
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from mer_jax.data.songs import STEM_ORDER
from mer_jax.separation.stems import PREFIX, OracleSeparator, SeparationError, StemsSeparator

__all__ = ["SEPARATORS", "FILE_SEPARATORS", "STEM_ORDER", "SeparationError", "Separator",
           "OracleSeparator", "StemsSeparator", "Spleeter4Separator", "OpenUnmixSeparator",
           "make_separator", "use_weights_dir",
           "separator_name", "separator_label", "separator_fingerprint"]

SEPARATORS = ("spleeter4", "umxhq", "umxl", "oracle")   # and stems:DIR (separation.stems)
OPEN_UNMIX = ("umxhq", "umxl")
FILE_SEPARATORS = ("oracle", PREFIX)        # stems read from files: none for a new song


class Separator(Protocol):
    name: str

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        """``(channels, n)`` -> ``(4, n)`` mono stems in STEM_ORDER."""


class Spleeter4Separator:
    """Spleeter 2-stem in JAX + HPSS split of the accompaniment (see the package docstring).

    :meth:`separate_many` runs both as one program (``accompaniment.separate_four``), batched
    over songs (on an accelerator, in the parent process); ``__call__`` one clip as two programs,
    ``two_stems`` (the U-Net: a clip -> {"vocals", "accompaniment"}) then the split: the same
    stems, bit for bit on CPU, and on XLA:CPU no slower than the one program (3.46 against
    3.53 s per 45 s song in benchmarks/preprocess_stages.py; 3.15 against 3.60 s in a probe)."""

    name = "spleeter4"

    def __init__(self, cache_dir: os.PathLike | str):
        from mer_jax.separation.spleeter import Spleeter2Stems
        from mer_jax.separation.spleeter_weights import load_weights
        self.two_stems = Spleeter2Stems(load_weights(cache_dir))

    def separate_many(self, clips: list[np.ndarray], batch: int) -> list[np.ndarray]:
        """Clips ``(channels, n)`` of one length -> ``(4, n)`` stems in STEM_ORDER each (what
        ``__call__`` gives, to float tolerance), ``batch`` songs per compiled call."""
        from mer_jax.separation.accompaniment import separate_four
        from mer_jax.separation.spleeter import in_batches
        program = functools.partial(separate_four, self.two_stems.params, order=STEM_ORDER)
        return in_batches(program, clips, batch)

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        from mer_jax.separation.accompaniment import in_order, split_accompaniment
        two = self.two_stems(clip)
        return in_order(two["vocals"], split_accompaniment(two["accompaniment"]), STEM_ORDER)


class OpenUnmixSeparator:
    """Open-Unmix in JAX with its released weights (``umxhq``, ``umxl``; see
    ``mer_jax.separation.openunmix`` and ``openunmix_weights``): stereo in, four stereo stems
    out (:meth:`separate_stereo`), down-mixed to mono for the features (``__call__``)."""

    def __init__(self, model: str, weights: os.PathLike | str | None = None,
                 pinned: bool = True, niter: int = 1):
        from mer_jax.separation import openunmix, openunmix_weights
        states = openunmix_weights.load_weights(model, weights, pinned)
        self.name, self.niter = model, niter
        self.params = {t: openunmix.to_arrays(s) for t, s in states.items()}
        self._order = [openunmix.TARGETS.index(s) for s in STEM_ORDER]

    def separate_stereo(self, audio: np.ndarray) -> np.ndarray:
        """``(1 or 2, n)`` -> ``(4, 2, n)`` float32 stereo stems in STEM_ORDER."""
        from mer_jax.separation.openunmix import separate_stereo
        from mer_jax.separation.spleeter import to_stereo
        stems = separate_stereo(self.params, to_stereo(audio), niter=self.niter)
        return np.asarray(stems)[self._order]

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        return self.separate_stereo(clip).mean(axis=1)


def use_weights_dir(folder: os.PathLike | str | None) -> None:
    """``--weights-dir``: where Open-Unmix's weights are, for this process and its workers."""
    if folder is not None:
        from mer_jax.separation.openunmix_weights import ENV
        os.environ[ENV] = str(Path(folder).expanduser().resolve())


def make_separator(name: str, cache_dir: os.PathLike | str = "cache") -> Separator:
    if name == "oracle":
        return OracleSeparator()
    if name == "spleeter4":
        return Spleeter4Separator(cache_dir)
    if name in OPEN_UNMIX:
        return OpenUnmixSeparator(name)
    if name.startswith(PREFIX):
        return StemsSeparator(Path(name[len(PREFIX):]))
    raise ValueError(f"unknown separator {name!r}; choose from {', '.join(SEPARATORS)} or "
                     f"{PREFIX}DIR")


def separator_name(text: str) -> str:
    """A separator as given on a command line -> its canonical name (``stems:DIR`` with DIR
    made absolute); argparse.ArgumentTypeError when unknown or DIR is not a folder."""
    if text in SEPARATORS:
        return text
    if text.startswith(PREFIX):
        folder = Path(text[len(PREFIX):]).expanduser()
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: {folder} is not a folder")
        return PREFIX + str(folder.resolve())
    raise argparse.ArgumentTypeError(f"unknown separator {text!r}; choose from "
                                     f"{', '.join(SEPARATORS)} or {PREFIX}DIR")


def separator_label(name: str) -> str:
    """A file-name-safe label: ``stems:/data/separated/htdemucs`` -> ``stems-htdemucs``."""
    if name.startswith(PREFIX):
        name = "stems-" + Path(name[len(PREFIX):]).name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def separator_fingerprint(name: str, songs) -> str | None:
    """What besides its name identifies a separator's output for ``songs``: the stem files'
    digest for ``stems:DIR``, None for the others (their code and weights are versioned)."""
    if name.startswith(PREFIX):
        return StemsSeparator(Path(name[len(PREFIX):])).fingerprint(songs)
    return None
