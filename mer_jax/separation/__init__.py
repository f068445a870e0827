"""Source separation into the paper's four stems (vocals, bass, drums, other), chosen by name.

* ``spleeter4`` (default): Deezer's pretrained Spleeter 2-stem U-Net (vocals / accompaniment),
  ported to JAX (``spleeter``), then the accompaniment split into drums / bass / other by
  harmonic-percussive separation and a bass crossover (``accompaniment``). This departs from the
  paper's Wave-U-Net, whose 4-stem weights cannot be obtained offline.
* ``oracle``: the dataset's true stems - ``<root>/stems/<id>/<stem>.wav`` (the synthetic dataset)
  or ``<stem>.wav|flac`` beside the mixture (MUSDB-style folders).

Every separator maps a clip ``(channels, n)`` at 44.1 kHz that starts ``start`` samples into the
song at ``audio_path`` to mono stems ``(4, n)`` float32 in STEM_ORDER (``start`` matters to the
oracle, which reads the same span of the true stems; prediction windows past the first have
``start > 0``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from mer_jax import audio as audio_io
from mer_jax.data.songs import STEM_ORDER

SEPARATORS = ("spleeter4", "oracle")


class SeparationError(RuntimeError):
    """A song that cannot be separated; the message names the song and the reason."""


class Separator(Protocol):
    name: str

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        """``(channels, n)`` -> ``(4, n)`` mono stems in STEM_ORDER."""


class OracleSeparator:
    """The true stems, decoded and cut/padded like the clip: samples [start, start + n)."""

    name = "oracle"

    def __init__(self, sample_rate: int = audio_io.SAMPLE_RATE):
        self.sample_rate = sample_rate

    @staticmethod
    def stem_paths(audio_path: Path, song_id: str) -> dict[str, Path] | None:
        audio_path = Path(audio_path)
        candidates = [audio_path.parent.parent / "stems" / song_id, audio_path.parent]
        for folder in candidates:
            found = {}
            for stem in STEM_ORDER:
                hits = [folder / f"{stem}{ext}" for ext in (".wav", ".flac")
                        if (folder / f"{stem}{ext}").is_file()]
                if not hits:
                    break
                found[stem] = hits[0]
            if len(found) == len(STEM_ORDER):
                return found
        return None

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        paths = self.stem_paths(audio_path, song_id)
        if paths is None:
            raise SeparationError(f"song {song_id}: no true stems (looked for stems/{song_id}/"
                                  f"<stem>.wav and <stem>.wav|flac beside {audio_path})")
        n = clip.shape[-1]
        stems = []
        for stem in STEM_ORDER:
            loaded = audio_io.load_clip(paths[stem], sample_rate=self.sample_rate,
                                        seconds=(start + n) / self.sample_rate, min_seconds=0.0)
            stems.append(audio_io.fix_length(loaded.samples[start:], n))
        return np.stack(stems).astype(np.float32)


class Spleeter4Separator:
    """Spleeter 2-stem in JAX + HPSS split of the accompaniment (see the package docstring).

    The two halves can also run apart: :meth:`two_stems` (the U-Net, batched over songs: the
    accelerator's part, in the parent process) and :meth:`finish` (the HPSS split, on CPU in a
    worker, which then never loads the U-Net's weights)."""

    name = "spleeter4"

    def __init__(self, cache_dir: os.PathLike | str, unet: bool = True):
        """``unet=False``: without the U-Net (no weights loaded): :meth:`finish` only."""
        self._spleeter = None
        if unet:
            from mer_jax.separation.spleeter import Spleeter2Stems
            from mer_jax.separation.spleeter_weights import load_weights
            self._spleeter = Spleeter2Stems(load_weights(cache_dir))

    def two_stems(self, clips: list[np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
        """Clips ``(channels, n)`` of one length -> {"vocals", "accompaniment"} ``(n,)`` each,
        ``batch`` songs per compiled call."""
        return self._spleeter.separate_many(clips, batch)

    @staticmethod
    def finish(two: dict[str, np.ndarray]) -> np.ndarray:
        """{"vocals", "accompaniment"} -> ``(4, n)`` stems in STEM_ORDER (the HPSS split)."""
        from mer_jax.separation.accompaniment import split_accompaniment
        stems = {"vocals": two["vocals"], **split_accompaniment(two["accompaniment"])}
        return np.stack([stems[s] for s in STEM_ORDER]).astype(np.float32)

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        return self.finish(self._spleeter(clip))


def make_separator(name: str, cache_dir: os.PathLike | str = "cache") -> Separator:
    if name == "oracle":
        return OracleSeparator()
    if name == "spleeter4":
        return Spleeter4Separator(cache_dir)
    raise ValueError(f"unknown separator {name!r}; choose from {SEPARATORS}")
