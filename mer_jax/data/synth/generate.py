"""Render synthetic songs and write them in the PMEmo layout (plus true stems).

    OUT/metadata.csv                                   musicId, fileName, title, ... (PMEmo's)
    OUT/annotations/static_annotations.csv             musicId, Arousal(mean), Valence(mean)
    OUT/annotations/static_annotations_std.csv         musicId, Arousal(std), Valence(std)
    OUT/chorus/<id>.wav                                the mix
    OUT/stems/<id>/{vocals,bass,drums,other}.wav       the true stems (the "oracle" separator)
    OUT/synth_songs.csv                                the known answer: parameters, cues, latent
    OUT/synth_config.json                              what generated it (n, seconds, seed, ...)

Audio is mono 16-bit PCM. Stems are quantized first and the mix is their integer sum, so the
decoded mix equals the sum of the decoded stems exactly, and nothing clips (peak <= -1 dBFS).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mer_jax.audio import write_wav
from mer_jax.files import write_rows
from mer_jax.data.synth import perception
from mer_jax.data.synth.instruments import RENDERERS
from mer_jax.data.synth.params import STEMS, SongParams, sample_song_params

GENERATOR_VERSION = 1
PEAK_LIMIT = 10 ** (-1 / 20)          # -1 dBFS
STEM_BASE_DB = {"vocals": 0.0, "bass": -2.0, "drums": -1.0, "other": -3.0}
COMPLETE_MARKER = ".complete"
PCM_SCALE = 32768                     # libsndfile decodes 16-bit PCM as int / 32768


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    n: int = 200
    seconds: float = 20.0
    seed: int = 0
    sample_rate: int = 44_100
    panel_size: int = 10      # annotators per song (PMEmo had at least 10 per song)
    pool_size: int = 40       # annotators in the crowd the panels are drawn from

    def __post_init__(self):
        if (self.n < 1 or self.seconds <= 0 or self.panel_size < 2
                or self.pool_size < self.panel_size):
            raise ValueError(f"invalid synthetic dataset config: {self}")


@dataclasses.dataclass(frozen=True)
class SynthSong:
    """One rendered song: int16 stems ``(4, samples)`` in STEMS order and their sum
    ``(samples,)``."""

    song_id: str
    params: SongParams
    stems: np.ndarray
    mix: np.ndarray
    loudness_db: float
    cues: np.ndarray
    latent: np.ndarray       # (valence, arousal) before annotator variation
    label_mean: np.ndarray   # (valence, arousal) on 0-1
    label_std: np.ndarray


def _rng(config: SynthConfig, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, 0, index, stream])


def pool_for(config: SynthConfig) -> perception.AnnotatorPool:
    return perception.annotator_pool(np.random.default_rng([config.seed, 1]), config.pool_size)


def mix_stems(params: SongParams, raw: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Balance and level the raw stems; returns int16 stems (4, n), their int16 sum, loudness dB."""
    stems = []
    for name, x, gain_db in zip(STEMS, raw, params.stem_gain_db):
        rms = np.sqrt(np.mean(x * x))
        stems.append(x / rms * 10 ** ((STEM_BASE_DB[name] + gain_db) / 20) if rms > 0 else x)
    stems = np.stack(stems)
    mix = stems.sum(axis=0)
    scale = 10 ** (params.level_db / 20) / np.sqrt(np.mean(mix * mix))
    peak = max(np.abs(mix).max(), np.abs(stems).max()) * scale
    if peak > PEAK_LIMIT:
        scale *= PEAK_LIMIT / peak
    quantized = np.round(stems * scale * PCM_SCALE).astype(np.int32)
    total = quantized.sum(axis=0)
    assert np.abs(total).max() < PCM_SCALE and np.abs(quantized).max() < PCM_SCALE
    loudness_db = 20 * np.log10(np.sqrt(np.mean((total / PCM_SCALE) ** 2)))
    return quantized.astype(np.int16), total.astype(np.int16), float(loudness_db)


def render_song(config: SynthConfig, index: int, pool: perception.AnnotatorPool) -> SynthSong:
    """Song ``index`` (0-based) of the dataset: parameters, audio and panel labels."""
    params = sample_song_params(_rng(config, index, 0))
    n = int(round(config.seconds * config.sample_rate))
    raw = [RENDERERS[name](params, _rng(config, index, 1 + k), n, config.sample_rate)
           for k, name in enumerate(STEMS)]
    stems, mix, loudness_db = mix_stems(params, raw)
    cues = perception.cue_vector(params, loudness_db)
    mean, std = perception.panel_labels(pool, cues, _rng(config, index, 9), config.panel_size)
    return SynthSong(str(index + 1), params, stems, mix, loudness_db, cues,
                     perception.latent_emotion(cues), mean, std)


def _render_and_write(job: tuple[SynthConfig, int, str]) -> SynthSong:
    config, index, out = job
    song = render_song(config, index, pool_for(config))
    root = Path(out)
    stem_dir = root / "stems" / song.song_id
    stem_dir.mkdir(parents=True, exist_ok=True)
    for name, samples in zip(STEMS, song.stems):
        write_wav(stem_dir / f"{name}.wav", samples, config.sample_rate, subtype="PCM_16")
    write_wav(root / "chorus" / f"{song.song_id}.wav", song.mix, config.sample_rate,
              subtype="PCM_16")  # the mix last: a song with its chorus file is complete
    return dataclasses.replace(song, stems=np.empty((0, 0), np.int16), mix=np.empty(0, np.int16))


def _write_tables(out: Path, config: SynthConfig, songs: list[SynthSong]) -> None:
    write_rows(out / "metadata.csv",
               ["musicId", "fileName", "title", "artist", "album", "duration",
                "chorus_start_time", "chorus_end_time"],
               [[s.song_id, f"{s.song_id}.wav", f"synthetic song {s.song_id}", "mer-jax synth",
                 f"seed {config.seed}", config.seconds, "", ""] for s in songs])
    write_rows(out / "annotations" / "static_annotations.csv",
               ["musicId", "Arousal(mean)", "Valence(mean)"],
               [[s.song_id, float(s.label_mean[1]), float(s.label_mean[0])] for s in songs])
    write_rows(out / "annotations" / "static_annotations_std.csv",
               ["musicId", "Arousal(std)", "Valence(std)"],
               [[s.song_id, float(s.label_std[1]), float(s.label_std[0])] for s in songs])
    fields = [f.name for f in dataclasses.fields(SongParams) if f.name != "stem_gain_db"]
    write_rows(out / "synth_songs.csv",
               ["musicId", *fields, *(f"gain_db_{stem}" for stem in STEMS), "loudness_db",
                *(f"cue_{c}" for c in perception.CUES), "latent_valence", "latent_arousal"],
               [[s.song_id, *(getattr(s.params, f) for f in fields), *s.params.stem_gain_db,
                 s.loudness_db, *map(float, s.cues), *map(float, s.latent)] for s in songs])


def write_dataset(out: os.PathLike | str, config: SynthConfig, workers: int | None = None,
                  progress: bool = True) -> Path:
    """Generate the dataset into ``out`` with ``workers`` processes (default: all cores).

    Deterministic: the same config gives bit-identical files whatever ``workers`` is. A folder
    generated with another config is refused rather than mixed; a complete one with the same
    config is returned as is; an interrupted one is generated again.
    """
    out = Path(out)
    stamp = out / "synth_config.json"
    wanted = {"generator_version": GENERATOR_VERSION, **dataclasses.asdict(config)}
    if stamp.exists() and json.loads(stamp.read_text()) != wanted:
        raise FileExistsError(f"{out} holds a synthetic dataset of another config "
                              f"({stamp.read_text().strip()}); choose another --out")
    complete = out / COMPLETE_MARKER
    if complete.exists() and stamp.exists():
        return out
    (out / "chorus").mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    jobs = [(config, index, str(out)) for index in range(config.n)]
    workers = max(1, min(workers or os.cpu_count() or 1, config.n))
    bar = tqdm(total=config.n, desc="synthesizing songs", unit="song", disable=not progress)
    if workers == 1:
        songs = []
        for job in jobs:
            songs.append(_render_and_write(job))
            bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            songs = []
            for song in pool.imap(_render_and_write, jobs, chunksize=1):
                songs.append(song)
                bar.update()
    bar.close()
    _write_tables(out, config, songs)
    complete.touch()
    return out
