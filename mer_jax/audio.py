"""Audio decoding and clip preparation: file -> float32 (channels, samples) -> fixed-length mono
clip.

Every failure raises :class:`AudioError`, whose message names the file and the reason, so that a
batch job can record it and go on with the next file.

Shapes: ``decode`` returns ``(channels, samples)``; ``to_mono`` maps ``(channels, samples)`` to
``(samples,)``; ``load_clip`` returns a :class:`Clip` whose ``samples`` are ``(clip_samples,)``
(mono) or ``(channels, clip_samples)``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from mer_jax.files import atomic_path

SAMPLE_RATE = 44_100            # the paper converts every song to 44.1 kHz
CLIP_SECONDS = 45.0             # PMEmo choruses are 45 s; the paper pads/crops to that length
MIN_SECONDS = 1.0               # anything shorter cannot be a song excerpt
SILENCE_PEAK = 10 ** (-90 / 20)  # peak below -90 dBFS counts as silent
# file suffixes taken for audio when a folder is read (datasets, prediction); libsndfile decodes all
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif",
                            ".aifc", ".au", ".caf", ".w64", ".rf64"})

# Decoders may report a few thousand frames more than they deliver (mp3 encoder delay and padding);
# a container that delivers fewer frames than this fraction of its header's count is truncated.
_TRUNCATION_TOLERANCE = 0.99


class AudioError(ValueError):
    """An audio file that cannot be used; ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SilentAudioWarning(UserWarning):
    """The audio decodes but carries no signal (peak below -90 dBFS)."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """A decoded, resampled, length-fixed excerpt.

    samples: float32, ``(n,)`` when mono, else ``(channels, n)``; n = round(seconds * sample_rate).
    source_seconds: duration of the decoded file before padding/truncation.
    silent: True when the decoded audio's peak is below -90 dBFS (allowed, but flagged).
    """

    path: str
    samples: np.ndarray
    sample_rate: int
    source_seconds: float
    silent: bool


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE file's data chunk declares beyond the end of the file (0 if intact).

    libsndfile silently shortens a truncated WAV to the frames present, so the header is checked.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RIFX") or riff[8:12] != b"WAVE":
            return 0
        endian = "<" if riff[:4] == b"RIFF" else ">"
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack(endian + "4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size == 0xFFFFFFFF:  # streaming writers leave the size open
                    return 0
                return max(0, offset + 8 + chunk_size - size)
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0


def decode(path: os.PathLike | str) -> tuple[np.ndarray, int]:
    """Decode any libsndfile format (wav, flac, ogg, mp3, ...) to float32 ``(channels, samples)``.

    Raises AudioError for a missing, empty or unreadable (permissions) file, one that is not
    audio, a truncated or corrupt stream, no channels, no samples, or non-finite samples (NaN/Inf
    in float files).
    An mp3 cut short decodes to its intact frames (the format has no length field to check);
    the minimum-length check of :func:`load_clip` catches the ones cut too short to use.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioError(path, "permission denied (the file is not readable)") from None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        raise AudioError(path, "not a decodable audio file (format not recognised)") from None
    if info.channels < 1:
        raise AudioError(path, "no audio channels")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"truncated or corrupt audio stream ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    if info.format in ("WAV", "WAVEX") and (missing := _wav_missing_bytes(path)):
        raise AudioError(path, f"truncated: the WAV data chunk lacks {missing} bytes")
    if info.frames > 0 and data.shape[0] < _TRUNCATION_TOLERANCE * info.frames:
        raise AudioError(
            path, f"truncated: header declares {info.frames} frames, only {data.shape[0]} decoded")
    if not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioError(path, f"{bad} non-finite (NaN/Inf) samples")
    return np.ascontiguousarray(data.T), int(sample_rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels: ``(channels, n)`` -> ``(n,)``; a 1-D input is returned as is."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=0, dtype=np.float32)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (scipy.signal.resample_poly); float32 out."""
    if rate_in == rate_out:
        return samples
    g = math.gcd(rate_in, rate_out)
    out = scipy.signal.resample_poly(samples, rate_out // g, rate_in // g, axis=-1)
    return out.astype(np.float32, copy=False)


def fix_length(samples: np.ndarray, n: int) -> np.ndarray:
    """Truncate or zero-pad the last axis to exactly ``n`` samples."""
    have = samples.shape[-1]
    if have >= n:
        return samples[..., :n]
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, n - have)]
    return np.pad(samples, pad)


def is_silent(samples: np.ndarray) -> bool:
    return float(np.max(np.abs(samples), initial=0.0)) < SILENCE_PEAK


def load_clip(path: os.PathLike | str, *, sample_rate: int = SAMPLE_RATE,
              seconds: float | None = CLIP_SECONDS, min_seconds: float = MIN_SECONDS,
              mono: bool = True) -> Clip:
    """Decode ``path``, down-mix (if ``mono``), resample, and fix the length to ``seconds``.

    ``seconds=None`` keeps the whole file. Files shorter than ``min_seconds`` raise AudioError;
    silent files are returned with ``silent=True`` and a :class:`SilentAudioWarning`.
    """
    samples, rate = decode(path)
    source_seconds = samples.shape[-1] / rate
    silent = is_silent(samples)
    if source_seconds < min_seconds:
        raise AudioError(path, f"too short: {source_seconds:.3f} s < minimum {min_seconds} s")
    if mono:
        samples = to_mono(samples)
    samples = resample(samples, rate, sample_rate)
    if seconds is not None:
        samples = fix_length(samples, int(round(seconds * sample_rate)))
    if silent:
        warnings.warn(f"{path}: silent audio (peak below -90 dBFS)", SilentAudioWarning,
                      stacklevel=2)
    return Clip(path=str(path), samples=np.ascontiguousarray(samples, dtype=np.float32),
                sample_rate=sample_rate, source_seconds=source_seconds, silent=silent)


def write_wav(path: os.PathLike | str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE,
              subtype: str = "FLOAT") -> None:
    """Write ``(n,)`` or ``(channels, n)`` samples (float, or int16 written as is with
    ``subtype="PCM_16"``); the file appears atomically."""
    data = samples.T if samples.ndim == 2 else samples
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype=subtype, format="WAV")
