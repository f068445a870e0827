"""Preprocess a dataset into its cached Zarr feature store; prints the store's path last.

    python -m pipelines.preprocess --data-dir DIR --separator spleeter4|oracle \
        [--cache-dir cache] [--workers N] [--clip-seconds 45]

DIR is a PMEmo-layout folder (real PMEmo2019, ../shared/data/PMEmo2019-mini, the synthetic
dataset) or an emoMusic folder. Rerunning resumes: finished songs are kept, pending and failed
ones are (re)done. Failed songs are listed with their reasons and skipped, as are the songs the
reader left out (e.g. no std annotation, no audio) and audio files no annotation names; the exit
code is 1 only when no song could be processed.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from mer_jax import audio as audio_io
from mer_jax.data import DatasetError
from mer_jax.preprocess import PreprocessConfig, preprocess, read_dataset
from mer_jax.runtime import run_command
from mer_jax.separation import SEPARATORS
from mer_jax.separation.spleeter_weights import WeightsError
from mer_jax.store import FeatureStore, StoreError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--separator", choices=SEPARATORS, default="spleeter4")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clip-seconds", type=float, default=audio_io.CLIP_SECONDS,
                        help="clip length (the paper: 45 s -> 15,502 STFT frames)")
    args = parser.parse_args(argv)
    config = PreprocessConfig.for_clip(args.separator, args.clip_seconds)
    try:
        dataset = read_dataset(args.data_dir)
        path = preprocess(args.data_dir, config, args.cache_dir, workers=args.workers)
    except (DatasetError, StoreError, WeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = FeatureStore(path)
    failures = store.failures()
    print(f"{len(store.done)}/{len(store.ids)} songs preprocessed, {len(failures)} failed, "
          f"{len(dataset.skipped)} skipped by the reader, {len(dataset.unannotated)} audio files "
          "without annotation")
    for song_id, reason in failures.items():
        print(f"  failed {song_id}: {reason}")
    for line in dataset.report().splitlines()[1:]:   # "  skipped ID: reason", "  no annotation: FILE"
        print(line)
    print(path.resolve())
    return 0 if len(store.done) else 1


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
