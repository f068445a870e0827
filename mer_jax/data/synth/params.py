"""The musical parameters of one synthetic song, drawn independently per song."""
from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.songs import STEM_ORDER as STEMS  # the one home of the stem order

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)   # natural minor
# Scale degrees (0-based) of each bar's chord. Both use three chords of the mode's own quality
# and one of the other (major: 3 major triads + vi; minor: 3 minor triads + VI), so the mode is
# audible in the chords and not only in which chord is the tonic.
PROGRESSIONS = {True: (0, 4, 5, 3),    # I V vi IV
                False: (0, 5, 3, 4)}   # i VI iv v


@dataclasses.dataclass(frozen=True)
class SongParams:
    """What a composer/producer chose; every value in [0, 1] is a normalized control.

    tempo_bpm: 60-180. major: mode. key_root: MIDI pitch class offset 0-11.
    level_db: target RMS of the mix in dBFS (-30 .. -14) - the song's loudness.
    density: rhythmic density (hi-hat subdivision, kick syncopation, note lengths, chord stabs).
    consonance: 1 = plain triads; lower adds minor-2nd/tritone tones and detuning roughness.
    register: centre of the vocal melody, MIDI 55-76.
    vocal_brightness: lead timbre - 0 a soft rounded voice, 1 a bright, buzzy, harsh one.
    other_brightness, bass_brightness, hat_brightness: filter openness of those stems.
    vibrato_rate_hz, vibrato_depth: the lead's vibrato (4.5-7 Hz, 0.2-2.5 % of f0).
    stem_gain_db: per-stem balance in dB before the master level, in STEMS order.
    """

    tempo_bpm: float
    major: bool
    key_root: int
    level_db: float
    density: float
    consonance: float
    register: float
    vocal_brightness: float
    other_brightness: float
    bass_brightness: float
    hat_brightness: float
    vibrato_rate_hz: float
    vibrato_depth: float
    stem_gain_db: tuple[float, float, float, float]

    @property
    def scale(self) -> tuple[int, ...]:
        return MAJOR_SCALE if self.major else MINOR_SCALE

    @property
    def progression(self) -> tuple[int, ...]:
        return PROGRESSIONS[self.major]

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo_bpm


def sample_song_params(rng: np.random.Generator) -> SongParams:
    """Draw every parameter independently (uniform), so each cue's effect is identifiable."""
    u = rng.uniform
    return SongParams(
        tempo_bpm=float(u(60, 180)),
        major=bool(rng.random() < 0.5),
        key_root=int(rng.integers(0, 12)),
        level_db=float(u(-30, -14)),
        density=float(u(0, 1)),
        consonance=float(u(0, 1)),
        register=float(u(55, 76)),
        vocal_brightness=float(u(0, 1)),
        other_brightness=float(u(0, 1)),
        bass_brightness=float(u(0, 1)),
        hat_brightness=float(u(0, 1)),
        vibrato_rate_hz=float(u(4.5, 7.0)),
        vibrato_depth=float(u(0.002, 0.025)),
        stem_gain_db=tuple(float(g) for g in u(-4, 4, size=len(STEMS))),
    )


def midi_to_hz(midi) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def chord_pitches(params: SongParams, degree: int, octave_midi: int) -> list[int]:
    """Triad on scale ``degree`` (0-based) of the song's key, root near ``octave_midi``."""
    scale = params.scale
    notes = []
    for step in (0, 2, 4):
        d = degree + step
        notes.append(octave_midi + params.key_root + scale[d % 7] + 12 * (d // 7))
    return notes
