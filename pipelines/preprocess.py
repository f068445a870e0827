"""Preprocess a dataset into its cached Zarr feature store; prints the store's path last.

    python -m pipelines.preprocess --data-dir DIR [--dataset auto|pmemo|emomusic|deam|csv|4q] \
        [--separator spleeter4|umxhq|umxl|oracle|stems:STEMS_DIR] [--weights-dir W] \
        [--cache-dir cache] [--workers N] [--clip-seconds 45] [--spectrogram stft|mel] \
        [--shard i/n]

DIR is any layout of mer_jax.data (PMEmo2019, emoMusic, DEAM, 4Q, a folder with an annotations.csv;
detected unless --dataset names it). stems:STEMS_DIR reads stems made by another tool (Demucs,
Open-Unmix, Wave-U-Net; layouts in mer_jax.separation.stems); a song without its four stems is
recorded as failed, naming the missing ones. umxhq/umxl (Open-Unmix) read their released weights
from --weights-dir or $MER_JAX_WEIGHTS (mer_jax.separation.openunmix_weights).

--spectrogram: the CRNN's input, "stft" (the paper's |STFT|) or "mel" (mel bands, for configs that
train on them: mer_jax.features.spectrogram); each makes its own store, and the second one copies
the stems and openSMILE features of the first from the same --cache-dir (same songs, separator,
clips and audio) instead of separating again.

Rerunning resumes: finished songs are kept, pending and failed ones are (re)done. Failed songs
are listed with their reasons and skipped, as are the songs the reader left out (e.g. no std
annotation, no audio) and audio files no annotation names; the exit code is 1 only when no song
(of the shard) could be processed.

--shard i/n (1 <= i <= n) processes only the i-th of n contiguous, disjoint blocks of songs; the n
shards may run at the same time (a Slurm job array: ``--shard $SLURM_ARRAY_TASK_ID/N`` with
``--array=1-N``) into the one store, each locking only its own songs. Each prints the store's path
last; the store is complete when every shard has finished (the counts printed are the store's).

On a GPU/TPU the spleeter4 separator (U-Net and HPSS split, one program) and the spectrograms run
in this process, --separator-batch songs per compiled call (default 1, measured fastest per song
on an H200; 0 = each worker separates its own songs, the CPU default), while the --workers
processes (CPU only, ``JAX_PLATFORMS=cpu``) decode the clips and compute the openSMILE features.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from mer_jax import audio as audio_io
from mer_jax.data import DatasetError
from mer_jax.data import DATASET_CHOICES, read_dataset
from mer_jax.features.spectrogram import KINDS as SPECTROGRAM_KINDS
from mer_jax.preprocess import PreprocessConfig, preprocess, shard_songs
from mer_jax.runtime import run_command
from mer_jax.separation import separator_name, use_weights_dir
from mer_jax.separation.spleeter_weights import WeightsError
from mer_jax.store import DONE, FeatureStore, StoreError


def _shard(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    try:
        shard = int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n") from None
    if not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= i <= n")
    return shard


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset, --separator and --weights-dir, shared with pipelines.experiment."""
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default="auto",
                        help="the annotations' layout (default: detected from the folder)")
    parser.add_argument("--separator", type=separator_name, default="spleeter4",
                        help="spleeter4 (default), umxhq / umxl (Open-Unmix, with --weights-dir), "
                             "oracle (true stems) or stems:DIR (stems made by another tool, see "
                             "mer_jax.separation.stems)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of Open-Unmix's released weights (umxhq/umxl; default "
                             "$MER_JAX_WEIGHTS)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    add_source_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clip-seconds", type=float, default=audio_io.CLIP_SECONDS,
                        help="clip length (the paper: 45 s -> 15,502 STFT frames)")
    parser.add_argument("--spectrogram", choices=SPECTROGRAM_KINDS, default="stft",
                        help="stft (the paper's 129 |STFT| bins, default) or mel (129 mel bands, "
                             "30 Hz-11 kHz: what configs/small_real.py trains on)")
    parser.add_argument("--shard", type=_shard, default=(1, 1), metavar="i/n",
                        help="only the i-th of n disjoint blocks of songs (default 1/1: all)")
    parser.add_argument("--separator-batch", type=int, default=None, metavar="B",
                        help="songs per separator call in this process (default: 1 on GPU/TPU, "
                             "0 = none on CPU)")
    args = parser.parse_args(argv)
    use_weights_dir(args.weights_dir)
    config = PreprocessConfig.for_clip(args.separator, args.clip_seconds, args.spectrogram)
    try:
        dataset = read_dataset(args.data_dir, args.dataset)
        path = preprocess(args.data_dir, config, args.cache_dir, workers=args.workers,
                          shard=args.shard, dataset=dataset, batch=args.separator_batch)
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
    for line in dataset.report().splitlines()[1:]:   # "  skipped ID: why", "  no annotation: F"
        print(line)
    start, stop = shard_songs(len(store.ids), args.shard)
    if args.shard != (1, 1):
        mine = int(np.count_nonzero(store.status[start:stop] == DONE))
        print(f"shard {args.shard[0]}/{args.shard[1]}: songs {start + 1}-{stop} of "
              f"{len(store.ids)}, {mine} done")
    print(path.resolve())
    return 0 if stop == start or np.any(store.status[start:stop] == DONE) else 1


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
