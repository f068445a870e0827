"""Rendering of the four stems (vocals, bass, drums, other) from a song's parameters.

All stems are mono float64 arrays of ``n`` samples, normalized later by the mixer. Synthesis is
note-wise NumPy/SciPy (no per-sample Python loops): oscillators from phase accumulators,
envelopes, and IIR filters (Butterworth low/high-pass, two-pole formant resonators).
"""
from __future__ import annotations

import numpy as np
import scipy.signal

from mer_jax.data.synth.params import SongParams, chord_pitches, midi_to_hz

BEATS_PER_BAR = 4
# Vowel formants (Hz) and bandwidths for a generic voice: a, e, i, o, u (Peterson & Barney-like).
VOWELS = np.array([[800, 1150, 2900], [450, 1900, 2600], [330, 2300, 3000],
                   [500, 900, 2500], [350, 700, 2500]], dtype=np.float64)
FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 140.0])


def _add(buffer: np.ndarray, start: int, segment: np.ndarray) -> None:
    """Add ``segment`` into ``buffer`` at sample ``start``, cut at the buffer's end."""
    if start >= buffer.size:
        return
    stop = min(buffer.size, start + segment.size)
    buffer[start:stop] += segment[: stop - start]


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, sustain at 1, linear release; ``(n,)``."""
    t = np.arange(n) / sr
    return np.clip(np.minimum(t / max(attack, 1e-4), (n / sr - t) / max(release, 1e-4)), 0.0, 1.0)


def _filter(x: np.ndarray, sr: int, cutoff: float, kind: str, order: int = 2) -> np.ndarray:
    sos = scipy.signal.butter(order, min(cutoff, 0.45 * sr), btype=kind, fs=sr, output="sos")
    return scipy.signal.sosfilt(sos, x)


def _saw(phase: np.ndarray) -> np.ndarray:
    return 2.0 * (phase % 1.0) - 1.0


def render_drums(p: SongParams, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Kick on 1 and 3 (syncopated extras with density), snare on 2 and 4, hi-hats at 1-4 per
    beat (density), hi-hat brightness = its high-pass cutoff."""
    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45 + 100 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.12)
    ts = t[: int(0.2 * sr)]
    snare = (_filter(rng.standard_normal(ts.size), sr, 1500, "high") * 0.6
             + np.sin(2 * np.pi * 190 * ts) * 0.5) * np.exp(-ts / 0.06)
    th = t[: int(0.08 * sr)]
    hat = _filter(rng.standard_normal(th.size), sr, 4000 + 8000 * p.hat_brightness, "high")
    hat *= np.exp(-th / (0.015 + 0.02 * p.hat_brightness))
    out = np.zeros(n)
    beat = p.beat_seconds * sr
    hats_per_beat = 1 + int(round(3 * p.density))
    for b in range(int(n / beat) + 1):
        pos = b % BEATS_PER_BAR
        velocity = rng.uniform(0.85, 1.0)
        if pos in (0, 2):
            _add(out, int(b * beat), kick * velocity)
        elif rng.random() < p.density * 0.6:
            _add(out, int((b + 0.5) * beat), kick * 0.7 * velocity)
        if pos in (1, 3):
            _add(out, int(b * beat), snare * velocity)
        for k in range(hats_per_beat):
            accent = 1.0 if k == 0 else 0.6
            _add(out, int((b + k / hats_per_beat) * beat), hat * 0.4 * accent * rng.uniform(0.7, 1))
    return out


def render_bass(p: SongParams, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Chord roots (and octaves/fifths on off-beats when dense), plucked sine + saw, low-passed
    at 150-1650 Hz by ``bass_brightness``."""
    out = np.zeros(n)
    beat = p.beat_seconds
    per_beat = 2 if p.density > 0.5 else 1
    step = beat / per_beat
    total_steps = int(n / sr / step) + 1
    for k in range(total_steps):
        bar = int(k * step / (beat * BEATS_PER_BAR))
        root = chord_pitches(p, p.progression[bar % 4], 36)[0]
        pitch = root + (0, 12, 7, 12)[k % 4] * (k % per_beat)
        dur = int(step * 0.9 * sr)
        t = np.arange(dur) / sr
        phase = midi_to_hz(pitch) * t
        tone = np.sin(2 * np.pi * phase) + 0.5 * p.bass_brightness * _saw(phase)
        env = _envelope(dur, sr, 0.005, 0.03) * np.exp(-t / (0.25 + 0.5 * (1 - p.density)))
        _add(out, int(k * step * sr), tone * env * rng.uniform(0.85, 1.0))
    return _filter(out, sr, 150 + 1500 * p.bass_brightness, "low")


def render_other(p: SongParams, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Chord pads: detuned saw pairs per chord tone, sustained per bar (or re-struck every beat
    when dense); dissonance adds a minor second / tritone and wider detuning; low-passed at
    300-5300 Hz by ``other_brightness``."""
    out = np.zeros(n)
    bar = p.beat_seconds * BEATS_PER_BAR
    dissonance = 1.0 - p.consonance
    detune = 2 ** ((3 + 30 * dissonance) / 1200)
    strikes = BEATS_PER_BAR if p.density > 0.65 else 1
    length = bar / strikes
    for b in range(int(n / sr / bar) + 1):
        pitches = chord_pitches(p, p.progression[b % 4], 48)
        voices = [(pitch, 1.0) for pitch in pitches]
        voices += [(pitches[0] + 1, dissonance), (pitches[0] + 6, 0.7 * dissonance)]
        for s in range(strikes):
            dur = int(length * sr * (0.6 if strikes > 1 else 1.0))
            t = np.arange(dur) / sr
            segment = np.zeros(dur)
            for pitch, gain in voices:
                if gain <= 0.01:
                    continue
                f = midi_to_hz(pitch)
                offset = rng.random()
                segment += gain * (_saw(f * t + offset) + _saw(f * detune * t + offset + 0.3)
                                   + np.sin(2 * np.pi * f * t))
            attack = 0.01 if strikes > 1 else 0.25
            _add(out, int((b * bar + s * length) * sr), segment * _envelope(dur, sr, attack, 0.15))
    return _filter(out, sr, 300 + 5000 * p.other_brightness ** 1.5, "low")


def melody(p: SongParams, rng: np.random.Generator, total_beats: float):
    """A phrase-wise random walk on the scale around ``register``: list of (onset beat, beats,
    MIDI pitch); rests between phrases; shorter notes when dense."""
    scale = np.array(p.scale)
    centre = int(round((p.register - p.key_root) / 12 * 7))  # scale-degree index of the register
    durations = np.array([0.5, 1.0, 1.5, 2.0])
    weights = np.array([0.2 + 0.6 * p.density, 0.4, 0.2, 0.3 * (1 - p.density) + 0.05])
    weights /= weights.sum()
    notes, beat, degree = [], 0.0, centre
    while beat < total_beats:
        phrase_end = beat + 2 * BEATS_PER_BAR
        while beat < min(phrase_end, total_beats):
            length = float(rng.choice(durations, p=weights))
            degree = int(np.clip(degree + rng.choice([-2, -1, 0, 1, 2], p=[.15, .3, .1, .3, .15]),
                                 centre - 6, centre + 6))
            midi = p.key_root + scale[degree % 7] + 12 * (degree // 7)
            notes.append((beat, length, midi))
            beat += length
        beat += float(rng.choice([0.0, 1.0, 2.0], p=[0.3, 0.4, 0.3]))
    return notes


def _formant_filter(source: np.ndarray, sr: int, vowel: np.ndarray, brightness: float):
    out = np.zeros_like(source)
    gains = np.array([1.0, 0.6 + 0.4 * brightness, 0.2 + 0.8 * brightness])
    for freq, bw, gain in zip(vowel, FORMANT_BANDWIDTHS * (1 + 0.5 * brightness), gains):
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * freq / sr), r * r]
        out += gain * scipy.signal.lfilter([1 - r], a, source)
    return out


def render_vocals(p: SongParams, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A voice-like lead: glottal-like source (soft) blended with a buzzy saw (bright) by
    ``vocal_brightness``, vibrato, a pitch scoop at note onsets, breath noise, and vowel formant
    resonators (brightness also raises the upper formants)."""
    out = np.zeros(n)
    beat = p.beat_seconds
    for onset, length, midi in melody(p, rng, n / sr / beat):
        dur = int(length * beat * sr * 0.92)
        t = np.arange(dur) / sr
        scoop = 2 ** (-0.4 * np.exp(-t / 0.04) / 12)
        vibrato = 1 + p.vibrato_depth * np.sin(2 * np.pi * p.vibrato_rate_hz * t
                                               + rng.uniform(0, 2 * np.pi)) * np.clip(t / 0.2, 0, 1)
        phase = np.cumsum(midi_to_hz(midi) * scoop * vibrato) / sr
        soft = np.sin(2 * np.pi * phase) + 0.35 * np.sin(4 * np.pi * phase) \
            + 0.12 * np.sin(6 * np.pi * phase)
        bright = _saw(phase)
        source = (1 - p.vocal_brightness) * soft + p.vocal_brightness * 1.4 * bright
        source += 0.03 * rng.standard_normal(dur)
        vowel = VOWELS[rng.integers(0, len(VOWELS))]
        voiced = _formant_filter(source, sr, vowel, p.vocal_brightness)
        _add(out, int(onset * beat * sr), voiced * _envelope(dur, sr, 0.03, 0.06))
    return out


RENDERERS = {"vocals": render_vocals, "bass": render_bass, "drums": render_drums,
             "other": render_other}
