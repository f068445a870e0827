"""Separation quality on MUSDB-style folders: BSS-eval v4 SDR per stem against the true stems.

    python -m pipelines.separation_quality --musdb-dir ../shared/data/musdb18-7s \
        [--separator spleeter4|oracle|stems:DIR] [--out sdr.csv]

Each track folder holds mixture.{wav,flac} and vocals/bass/drums/other.{wav,flac}. The mixture is
separated at 44.1 kHz; estimates and references are compared in mono (our stems are mono) with
museval's SDR (1 s windows, median over windows per track, median over tracks; see
mer_jax.separation.quality). ``stems:DIR`` scores stems made by another tool, found as
DIR/<track folder name>/<stem>.wav (or the other layouts of mer_jax.separation.stems). A track
that cannot be separated is listed with its reason and left out. The last lines give the
published Wave-U-Net M6 medians (the paper's separator), the distribution-free 95% interval of
each stem's median over tracks (order statistics; NaN under 6 tracks), and the median row.
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
from mer_jax.separation import (STEM_ORDER, SeparationError, make_separator, separator_name,
                                use_weights_dir)
from mer_jax.separation.quality import track_sdr
from mer_jax.separation.spleeter_weights import WeightsError
from mer_jax.stats import median_interval

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


def summarize(rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per stem over tracks: median, and the 95% interval's low, high and coverage."""
    table = np.stack(rows)
    intervals = np.array([median_interval(table[:, j]) for j in range(table.shape[1])])
    return {"median": np.nanmedian(table, axis=0), "low": intervals[:, 0],
            "high": intervals[:, 1], "coverage": intervals[:, 2]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--musdb-dir", type=Path, required=True)
    parser.add_argument("--separator", type=separator_name, default="spleeter4",
                        help="spleeter4 (default), umxhq, umxl, oracle or stems:DIR")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of Open-Unmix's released weights (umxhq/umxl; default "
                             "$MER_JAX_WEIGHTS)")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--out", type=Path, default=None, help="CSV of per-track SDRs")
    args = parser.parse_args(argv)
    use_weights_dir(args.weights_dir)
    tracks = find_tracks(args.musdb_dir)
    if not tracks:
        print(f"error: no */mixture.wav|flac under {args.musdb_dir}", file=sys.stderr)
        return 2
    try:
        separator = make_separator(args.separator, args.cache_dir)
    except (WeightsError, SeparationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scored, rows = [], []
    print(f"{'track':<36}" + "".join(f"{s:>9}" for s in STEM_ORDER))
    for track in tracks:
        try:
            sdr = evaluate_track(separator, track)
        except (SeparationError, audio_io.AudioError) as err:
            print(f"{track.name[:35]:<36} failed: {err}")
            continue
        scored.append(track)
        rows.append(sdr)
        print(f"{track.name[:35]:<36}" + "".join(f"{v:9.2f}" for v in sdr))
    if not rows:
        print("error: no track could be separated", file=sys.stderr)
        return 1
    summary = summarize(rows)
    if args.out:
        write_rows(args.out, ["track", *STEM_ORDER],
                   [[t.name, *map(float, r)] for t, r in zip(scored, rows)]
                   + [[name, *map(float, summary[key])] for name, key in (
                       ("median", "median"), ("ci95_low", "low"), ("ci95_high", "high"))])
    covered = summary["coverage"][np.isfinite(summary["coverage"])]
    coverage = f"{covered.min():.1%}" if covered.size else "too few tracks"
    print(f"{'Wave-U-Net M6 (MUSDB18, published)':<36}"
          + "".join(f"{WAVE_U_NET_M6[s]:9.2f}" for s in STEM_ORDER))
    print(f"{f'95% interval of the median ({coverage})':<36}"
          + "".join(f"{f'{lo:.1f}..{hi:.1f}':>9}"
                    for lo, hi in zip(summary["low"], summary["high"])))
    print(f"{f'median SDR dB, {args.separator}, {len(rows)} tracks':<36}"
          + "".join(f"{v:9.2f}" for v in summary["median"]))
    return 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
