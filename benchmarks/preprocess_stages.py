"""Benchmark: seconds per song for each preprocessing stage, and store reads vs recomputation.

    python benchmarks/preprocess_stages.py [--data-dir ../shared/data/PMEmo2019-mini] [--json]

On the real 45 s PMEmo clips: decode (mp3 -> 44.1 kHz stereo clip), separation (spleeter4 and
oracle-free timing of spleeter4 only: PMEmo has no true stems), spectrograms (mix + 4 stems, one
jitted call; the paper's |STFT|, and mel bands - ``--spectrogram mel`` - timed beside it, not in
the total), openSMILE (mix + 4 stems), store write (one song's chunks, zstd). Beside them, not in
the total: the separation's two parts (Spleeter's U-Net, the HPSS split; two programs, as CPU
workers run them), the same as one program (what an accelerator runs, ``separate_many``), and
the split's three
median filters done by scipy.ndimage (the implementation before the min/max network) and by ours,
side by side. Each stage is
timed per song after one warm-up song (JIT compilation excluded and reported separately).
Then: reading one training batch of 8 songs' spectrograms from the store versus recomputing them
from audio (decode + STFT for "mixed"; decode + separation + STFT for "sep").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import zarr

from mer_jax import audio as audio_io
from mer_jax import store as store_lib
from mer_jax.data import read_pmemo
from mer_jax.data.songs import STEM_ORDER
from mer_jax.features import opensmile_features
from mer_jax.features.spectrogram import spectrogram
from mer_jax.preprocess import PreprocessConfig
from mer_jax.separation import make_separator
from mer_jax.separation.accompaniment import (HPSSConfig, in_order, median_filter,
                                              split_accompaniment)
from mer_jax.separation.spleeter import stft

BATCH = 8
TOTAL = ("decode", "separation", "stft", "opensmile", "write")   # the stages a song goes through


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    return out, time.perf_counter() - start


def hpss_medians(accompaniment: np.ndarray) -> tuple[float, float]:
    """Seconds of the HPSS split's three median filters on a song's accompaniment magnitude
    ``(frames, 2049)``: scipy.ndimage.median_filter (the implementation before the min/max
    network) and ours (jitted; compiled by a first call), the same values."""
    import scipy.ndimage
    config = HPSSConfig()
    magnitude = np.abs(np.asarray(stft(jnp.asarray(accompaniment)[None])[0]))
    sizes = ((config.harmonic_frames, 0), (config.percussive_bins_low, 1),
             (config.percussive_bins, 1))
    ours = jax.jit(lambda m: [median_filter(m, size, axis) for size, axis in sizes])
    jax.block_until_ready(ours(magnitude))
    start = time.perf_counter()
    expected = [scipy.ndimage.median_filter(magnitude, size=(size, 1) if axis == 0 else (1, size))
                for size, axis in sizes]
    t_scipy = time.perf_counter() - start
    start = time.perf_counter()
    got = jax.block_until_ready(ours(magnitude))
    t_ours = time.perf_counter() - start
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(expected, got))
    return t_scipy, t_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/PMEmo2019-mini"))
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    songs = list(read_pmemo(args.data_dir))
    config = PreprocessConfig()
    mel = PreprocessConfig.for_clip("spleeter4", config.clip_seconds, "mel").spectrogram
    separator = make_separator("spleeter4", args.cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix="prep-bench-"))
    shapes = store_lib.StoreShapes(BATCH, 129, 2048, config.clip_samples, 6373)
    path = store_lib.create_store(tmp / "s.zarr", [str(i) for i in range(BATCH)],
                                  np.zeros((BATCH, 4), np.float32), shapes, {})
    root = zarr.open_group(str(path), mode="r+")
    stages: dict[str, list[float]] = {k: [] for k in
                                      ("decode", "separation", "stft", "mel", "opensmile", "write",
                                       "unet", "hpss_split", "separator_one_program",
                                       "medians_scipy", "medians_ours")}
    compile_s = {}
    try:
        for k in range(BATCH + 1):
            song = songs[k % len(songs)]
            clip, t_decode = timed(audio_io.load_clip, song.audio_path, mono=False)
            two, t_unet = timed(separator.two_stems, clip.samples)
            parts, t_split = timed(split_accompaniment, two["accompaniment"])
            stems = in_order(two["vocals"], parts, STEM_ORDER)
            t_sep = t_unet + t_split
            _, t_one = timed(separator.separate_many, [clip.samples], 1)
            waves = jnp.asarray(np.concatenate([audio_io.to_mono(clip.samples)[None], stems]))
            spectra, t_stft = timed(spectrogram, waves)
            _, t_mel = timed(spectrogram, waves, mel, config.sample_rate)
            start = time.perf_counter()
            smile = [opensmile_features.functionals(np.asarray(w), 44_100) for w in waves]
            t_smile = time.perf_counter() - start
            spectra = np.asarray(spectra)
            _, t_write = timed(lambda: store_lib.write_song(
                root, k % BATCH, mixed_spectrogram=spectra[0], sep_spectrogram=spectra[1:],
                stems=stems, mixed_opensmile=smile[0], sep_opensmile=np.concatenate(smile[1:]),
                source="bench"))
            t_scipy, t_ours = hpss_medians(two["accompaniment"])
            if k == 0:
                compile_s = {"separation_first_call": round(t_sep, 2),
                             "stft_first_call": round(t_stft, 2), "mel_first_call": round(t_mel, 2)}
                continue
            for name, value in zip(stages, (t_decode, t_sep, t_stft, t_mel, t_smile, t_write,
                                            t_unet, t_split, t_one, t_scipy, t_ours)):
                stages[name].append(value)
        reader = store_lib.FeatureStore(path)
        _, read_mixed = timed(lambda: reader.array("mixed/spectrogram")[np.arange(BATCH)])
        _, read_sep = timed(lambda: reader.array("sep/spectrogram")[np.arange(BATCH)])
        per_song = {name: statistics.median(values) for name, values in stages.items()}
        recompute_mixed = BATCH * (per_song["decode"] + per_song["stft"] / 5)
        recompute_sep = BATCH * (per_song["decode"] + per_song["separation"] + per_song["stft"] * 4 / 5)
    finally:
        shutil.rmtree(tmp)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "clip_seconds": config.clip_seconds,
        "songs_timed": BATCH, "per_song_s": {k: round(v, 3) for k, v in per_song.items()},
        "per_song_total_s": round(sum(v for k, v in per_song.items() if k in TOTAL), 2),
        **compile_s,
        "batch8_read_mixed_s": round(read_mixed, 3), "batch8_recompute_mixed_s": round(recompute_mixed, 2),
        "batch8_read_sep_s": round(read_sep, 3), "batch8_recompute_sep_s": round(recompute_sep, 2),
        "speedup_mixed": round(recompute_mixed / read_mixed, 1),
        "speedup_sep": round(recompute_sep / read_sep, 1)}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
