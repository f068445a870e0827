"""Stems read from files: the true stems (``oracle``) or any tool's (``stems:DIR``).

``stems:DIR`` finds a song's four stems ``{vocals,bass,drums,other}.{wav,flac,mp3}`` in the
first of these layouts that holds all four (``<name>``: the song id, then its audio file's stem):

    DIR/<name>/<stem>.<ext>        mer-jax's own; Demucs (-o OUT, DIR = OUT/<model>, e.g.
                                   separated/htdemucs); Open-Unmix with --outdir DIR;
                                   Spleeter -o DIR
    DIR/<name>_<model>/<stem>.<ext>    Open-Unmix without --outdir (``song_umxhq/``)
    DIR/<file>_<stem>.wav          the paper's Wave-U-Net (Predict.py output_path=DIR), <file> the
                                   audio file's full name (``17.mp3_vocals.wav``); or <name>_<stem>

Stems are down-mixed to mono, resampled to 44.1 kHz and cut/padded like the clip. A song whose
four stems are not all found, that fail to decode, or that are much shorter than its audio
(stems of another excerpt) is a :class:`SeparationError` naming what is wrong, recorded per song.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from mer_jax import audio as audio_io
from mer_jax import files
from mer_jax.data.songs import STEM_ORDER

STEM_SUFFIXES = (".wav", ".flac", ".mp3")
PREFIX = "stems:"
SHORTER_TOLERANCE = 1.0    # seconds stems may fall short of the audio (codec delay, resampling)


class SeparationError(RuntimeError):
    """A song that cannot be separated; the message names the song and the reason."""


def _complete(candidates: dict[str, list[Path]]) -> dict[str, Path] | None:
    """stem -> the first existing candidate file, if all four stems have one."""
    found = {stem: next((p for p in paths if p.is_file()), None)
             for stem, paths in candidates.items()}
    return found if all(found.values()) else None


def _in_folder(folder: Path) -> dict[str, list[Path]]:
    return {s: [folder / f"{s}{ext}" for ext in STEM_SUFFIXES] for s in STEM_ORDER}


def read_stems(paths: dict[str, Path], song_id: str, start: int, n: int,
               sample_rate: int = audio_io.SAMPLE_RATE) -> np.ndarray:
    """Samples [start, start + n) of each stem, mono, zero-padded: ``(4, n)`` float32."""
    stems = []
    for stem in STEM_ORDER:
        try:
            loaded = audio_io.load_clip(paths[stem], sample_rate=sample_rate,
                                        seconds=(start + n) / sample_rate, min_seconds=0.0)
        except audio_io.AudioError as err:
            raise SeparationError(f"song {song_id}: stem {stem}: {err}") from None
        stems.append(audio_io.fix_length(loaded.samples[start:], n))
    return np.stack(stems).astype(np.float32)


class OracleSeparator:
    """The true stems, decoded and cut/padded like the clip: samples [start, start + n), from
    ``<root>/stems/<id>/<stem>.wav`` (the synthetic dataset) or beside the mixture (MUSDB)."""

    name = "oracle"

    def __init__(self, sample_rate: int = audio_io.SAMPLE_RATE):
        self.sample_rate = sample_rate

    @staticmethod
    def stem_paths(audio_path: Path, song_id: str) -> dict[str, Path] | None:
        audio_path = Path(audio_path)
        for folder in (audio_path.parent.parent / "stems" / song_id, audio_path.parent):
            if (found := _complete(_in_folder(folder))) is not None:
                return found
        return None

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        paths = self.stem_paths(audio_path, song_id)
        if paths is None:
            raise SeparationError(f"song {song_id}: no true stems (looked for stems/{song_id}/"
                                  f"<stem>.wav and <stem>.wav|flac beside {audio_path})")
        return read_stems(paths, song_id, start, clip.shape[-1], self.sample_rate)


class StemsSeparator:
    """Precomputed stems under one folder (``stems:DIR``; layouts in the module docstring)."""

    def __init__(self, root: Path, sample_rate: int = audio_io.SAMPLE_RATE):
        self.root = Path(root)
        self.name = PREFIX + str(self.root)
        self.sample_rate = sample_rate
        if not self.root.is_dir():
            raise SeparationError(f"{self.name}: no such folder")

    def layouts(self, audio_path: Path, song_id: str) -> list[dict[str, list[Path]]]:
        """Candidate files per stem, one dict per layout, in the order they are tried."""
        names = list(dict.fromkeys([song_id, Path(audio_path).stem]))
        found = [_in_folder(self.root / name) for name in names]
        for name in names:   # Open-Unmix's default <name>_<model>/ (one match only)
            suffixed = sorted(p for p in self.root.glob(f"{_glob_escape(name)}_*") if p.is_dir())
            if len(suffixed) == 1:
                found.append(_in_folder(suffixed[0]))
        for prefix in dict.fromkeys([Path(audio_path).name, *names]):   # Wave-U-Net, flat
            found.append({s: [self.root / f"{prefix}_{s}{ext}" for ext in STEM_SUFFIXES]
                          for s in STEM_ORDER})
        return found

    def stem_paths(self, audio_path: Path, song_id: str) -> dict[str, Path]:
        """stem -> file; SeparationError naming the missing stems of the closest layout."""
        candidates = self.layouts(audio_path, song_id)
        for layout in candidates:
            if (found := _complete(layout)) is not None:
                return found
        best = max(candidates, key=lambda layout: sum(any(p.is_file() for p in paths)
                                                      for paths in layout.values()))
        have = [s for s, paths in best.items() if any(p.is_file() for p in paths)]
        if not have:
            raise SeparationError(f"song {song_id}: no stems in {self.root} (looked for "
                                  f"{song_id}/<stem>.wav|flac|mp3 and the layouts of Demucs, "
                                  "Open-Unmix and Wave-U-Net)")
        missing = [s for s in STEM_ORDER if s not in have]
        where = best[have[0]][0].parent
        raise SeparationError(f"song {song_id}: stems incomplete in {where}: "
                              f"missing {', '.join(missing)} (found {', '.join(have)})")

    def __call__(self, clip: np.ndarray, audio_path: Path, song_id: str,
                 start: int = 0) -> np.ndarray:
        paths = self.stem_paths(audio_path, song_id)
        self._check_length(paths, audio_path, song_id, (start + clip.shape[-1]) / self.sample_rate)
        return read_stems(paths, song_id, start, clip.shape[-1], self.sample_rate)

    @staticmethod
    def _check_length(paths: dict[str, Path], audio_path: Path, song_id: str,
                      end: float) -> None:
        """Stems much shorter than the part of the song's audio that is used (up to ``end``
        seconds) were made from another excerpt."""
        try:
            song = min(sf.info(str(audio_path)).duration, end)
            stems = {s: sf.info(str(p)).duration for s, p in paths.items()}
        except (sf.LibsndfileError, RuntimeError):
            return    # undecodable files are reported when they are read
        short = {s: d for s, d in stems.items() if d < song - SHORTER_TOLERANCE}
        if short:
            raise SeparationError(
                f"song {song_id}: stems shorter than the {song:.1f} s of its audio used: "
                + ", ".join(f"{s} {d:.1f} s" for s, d in short.items())
                + " - made from another excerpt?")

    def fingerprint(self, songs) -> str:
        """Digest of every song's stem files (path under the folder and content SHA-256;
        "missing" where none), so a store made from other or changed stems is never reused, and a
        copy of the same stems (new modification times) reuses it. Hashing costs about 1 ms per
        MB, once per preprocessing run."""
        digest = hashlib.sha256()
        for song in songs:
            try:
                paths = self.stem_paths(song.audio_path, song.song_id)
                entries = [f"{p.relative_to(self.root)}:{files.file_sha256(p)}"
                           for p in paths.values()]
            except SeparationError:
                entries = ["missing"]
            digest.update(f"{song.song_id}|{'|'.join(entries)}\n".encode())
        return digest.hexdigest()


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
