"""The spleeter4 accompaniment split's settings, scored side by side (issue 17).

    python benchmarks/accompaniment_split.py [--musdb-dir ../shared/data/musdb18-7s] \
        [--synth-songs 12] [--cache-dir cache]

Spleeter's 2-stem U-Net runs once per song; then each HPSSConfig variant below splits the same
accompaniment into drums / bass / other (mer_jax.separation.accompaniment) and is scored with
the separation-quality SDR (median over 1 s windows, then over songs) on the MUSDB previews and
on synthetic songs with true stems. Prints one row per variant: vocals / bass / drums / other on
each set (vocals do not depend on the split). Last, the seconds per 45 s song of the first
split and of the default one, side by side (the previews' accompaniments joined into 45 s; one
call each to compile, then 3 interleaved repeats; median).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mer_jax import audio as audio_io                                   # noqa: E402
from mer_jax.data.songs import STEM_ORDER                               # noqa: E402
from mer_jax.data.synth import SynthConfig, write_dataset               # noqa: E402
from mer_jax.separation.accompaniment import (PARTS, HPSSConfig,  # noqa: E402
                                              split_accompaniment)
from mer_jax.separation.quality import track_sdr                        # noqa: E402

FIRST = HPSSConfig(percussive_bins=17, percussive_bins_low=17, bass_cutoff_hz=250.0,
                   crossover_width=0.5)                                   # preprocessing v2
V3 = HPSSConfig(percussive_bins=7, percussive_bins_low=7)                 # preprocessing v3
VARIANTS = {
    "first split (v2): 17 bins, 250 Hz, 0.5 oct": FIRST,
    "percussive 7 bins": dataclasses.replace(FIRST, percussive_bins=7, percussive_bins_low=7),
    "  + crossover 225 Hz, 1.5 oct (v3)": V3,
    "  + crossover 160 Hz, 0.5 oct": dataclasses.replace(V3, bass_cutoff_hz=160.0,
                                                           crossover_width=0.5),
    "  + harmonic 35 frames (~0.8 s)": dataclasses.replace(V3, harmonic_frames=35),
    "7 bins < 500 Hz, 17 above (default, v4)": HPSSConfig(),
    "7 bins < 250 Hz, 17 above": HPSSConfig(percussive_split_hz=250.0),
    "7 bins < 1 kHz, 17 above": HPSSConfig(percussive_split_hz=1000.0),
    "7 bins < 500 Hz, 11 above": HPSSConfig(percussive_bins=11),
    "5 bins < 500 Hz, 11 above": HPSSConfig(percussive_bins=11, percussive_bins_low=5),
}


def _songs(musdb: Path, synth: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """set -> [(stereo mixture (2, n), true stems (4, n))]."""
    sets = {"musdb": [], "synth": []}
    for track in sorted(p.parent for p in musdb.glob("*/mixture.*")):
        mix = audio_io.load_clip(next(track.glob("mixture.*")), seconds=None, mono=False).samples
        truth = [audio_io.load_clip(next(track.glob(f"{s}.*")), seconds=None).samples
                 for s in STEM_ORDER]
        sets["musdb"].append((mix, np.stack([audio_io.fix_length(t, mix.shape[-1])
                                             for t in truth])))
    for wav in sorted((synth / "chorus").glob("*.wav")):
        mix = audio_io.load_clip(wav, seconds=None, mono=False).samples
        sets["synth"].append((mix, np.stack([audio_io.load_clip(
            synth / "stems" / wav.stem / f"{s}.wav", seconds=None).samples for s in STEM_ORDER])))
    return sets


def _median_sdr(songs, twos, config: HPSSConfig) -> np.ndarray:
    """Median over songs of each stem's SDR (STEM_ORDER) with this split of the accompaniment."""
    sdr = []
    for (_, truth), two in zip(songs, twos):
        split = dict(zip(PARTS, split_accompaniment(two["accompaniment"], config)))
        estimate = np.stack([two["vocals"], split["bass"], split["drums"], split["other"]])
        sdr.append(track_sdr(truth, estimate))
    return np.nanmedian(np.stack(sdr), axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--musdb-dir", type=Path, default=REPO.parent / "shared/data/musdb18-7s")
    parser.add_argument("--synth-songs", type=int, default=12)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synth = Path(tmp) / "synth"   # before JAX starts: the generator's pool forks
        write_dataset(synth, SynthConfig(n=args.synth_songs, seconds=8.0, seed=7), progress=False)
        sets = _songs(args.musdb_dir, synth)
    from mer_jax.separation.spleeter import Spleeter2Stems
    from mer_jax.separation.spleeter_weights import load_weights
    spleeter = Spleeter2Stems(load_weights(args.cache_dir))
    two = {name: [spleeter(mix) for mix, _ in songs] for name, songs in sets.items()}
    print(f"{'variant':<42}" + "".join(f"{f'{n} (' + str(len(sets[n])) + ')':>30}" for n in sets))
    for label, config in VARIANTS.items():
        cells = [" ".join(f"{v:6.2f}" for v in _median_sdr(sets[name], two[name], config))
                 for name in sets]
        print(f"{label:<42}" + "".join(f"{c:>30}" for c in cells), flush=True)
    _time_splits(np.concatenate([t["accompaniment"] for t in two["musdb"]]))
    return 0


def _time_splits(accompaniment: np.ndarray, seconds: float = 45.0, repeats: int = 3) -> None:
    """Seconds per ``seconds`` of accompaniment: the first split vs the default, side by side."""
    clip = np.resize(accompaniment, int(seconds * 44_100)).astype(np.float32)  # cut or repeated
    configs = {"first split (v2)": FIRST, "default (v4)": HPSSConfig()}
    times = {name: [] for name in configs}
    for name, config in configs.items():
        split_accompaniment(clip, config)                           # compile
    for _ in range(repeats):
        for name, config in configs.items():
            start = time.perf_counter()
            split_accompaniment(clip, config)
            times[name].append(time.perf_counter() - start)
    print(" | ".join(f"{name}: {np.median(t):.2f} s per {seconds:.0f} s song"
                     for name, t in times.items()))


if __name__ == "__main__":
    sys.exit(main())
