"""Separation quality on MUSDB-style folders: BSS-eval v4 SDR per stem against the true stems.

    python -m pipelines.separation_quality --musdb-dir ../shared/data/musdb18-7s --separator spleeter4

Each track folder holds mixture.{wav,flac} and vocals/bass/drums/other.{wav,flac}. The mixture is
separated at 44.1 kHz; estimates and references are compared in mono (our stems are mono) with
museval's SDR (1 s windows, median over windows per track, median over tracks; see
mer_jax.separation.quality). The last lines give the median row beside the published Wave-U-Net
M6 medians on MUSDB18 (the paper's separator).
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from mer_jax import audio as audio_io
from mer_jax.files import write_rows
from mer_jax.runtime import run_command
from mer_jax.separation import SEPARATORS, STEM_ORDER, make_separator
from mer_jax.separation.quality import track_sdr

WAVE_U_NET_M6 = {"vocals": 3.25, "drums": 4.22, "bass": 3.21, "other": 2.25}  # Stoller et al. 2018


def find_tracks(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/mixture.*") if p.suffix in (".wav", ".flac"))


def evaluate_track(separator, track: Path) -> np.ndarray:
    """SDR per stem (STEM_ORDER) of one track."""
    mixture = next(p for p in track.glob("mixture.*") if p.suffix in (".wav", ".flac"))
    clip = audio_io.load_clip(mixture, seconds=None, mono=False)
    estimates = separator(clip.samples, mixture, track.name)
    references = np.stack([audio_io.fix_length(
        audio_io.load_clip(next(track.glob(f"{stem}.*")), seconds=None).samples,
        clip.samples.shape[-1]) for stem in STEM_ORDER])
    return track_sdr(references, estimates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--musdb-dir", type=Path, required=True)
    parser.add_argument("--separator", choices=SEPARATORS, default="spleeter4")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--out", type=Path, default=None, help="CSV of per-track SDRs")
    args = parser.parse_args(argv)
    tracks = find_tracks(args.musdb_dir)
    if not tracks:
        print(f"error: no */mixture.wav|flac under {args.musdb_dir}", file=sys.stderr)
        return 2
    separator = make_separator(args.separator, args.cache_dir)
    rows = []
    print(f"{'track':<36}" + "".join(f"{s:>9}" for s in STEM_ORDER))
    for track in tracks:
        sdr = evaluate_track(separator, track)
        rows.append(sdr)
        print(f"{track.name[:35]:<36}" + "".join(f"{v:9.2f}" for v in sdr))
    median = np.nanmedian(np.stack(rows), axis=0)
    if args.out:
        write_rows(args.out, ["track", *STEM_ORDER],
                   [[t.name, *map(float, r)] for t, r in zip(tracks, rows)]
                   + [["median", *map(float, median)]])
    print(f"{'Wave-U-Net M6 (MUSDB18, published)':<36}"
          + "".join(f"{WAVE_U_NET_M6[s]:9.2f}" for s in STEM_ORDER))
    print(f"{f'median SDR dB, {args.separator}, {len(tracks)} tracks':<36}"
          + "".join(f"{v:9.2f}" for v in median))
    return 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
