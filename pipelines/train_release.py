"""Train the release model: a mixed-mode CRNN on the 4Q development set, for ``mer-jax-predict``.

    python -m pipelines.train_release [--data-dir ../shared/data/4q-dev] [--config small_real] \
        [--workdir cache/release/4q-small_real] [--cache-dir cache] [--set KEY=VALUE ...]
    python -m mer_jax.predict --checkpoint cache/release/4q-small_real SONG.mp3 ...

Preprocesses the set (30 s clips, spleeter4; cached, shared with benchmarks/real_music.py),
trains one model (seed 0) in mixed mode - no separation is needed to predict with it - on 90% of
the songs, scores it on the 10% held out (quadrant accuracy: a sanity check on 16 songs, not the
benchmark; see benchmarks/real_music.py for the cross-validated figures), and exports it to
WORKDIR/models/mixed_iteration_1, which ``--checkpoint WORKDIR`` loads. Prints WORKDIR last.
A rerun with the same settings reuses the trained model (the training run resumes or is skipped).

What such a model can tell: a song's Russell quadrant, from 144 training songs labelled only by
quadrant (targets are quadrant-centre proxies, 0.25 / 0.75); its valence and arousal values are
positions between those centres, not ratings on a scale, and its stds are not rating spreads.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from mer_jax import baselines, evaluate, verdict
from mer_jax.predictions import read_iterations
from mer_jax.preprocess import PreprocessConfig, preprocess
from mer_jax.runtime import run_command
from mer_jax.store import FeatureStore
from mer_jax.training.config import apply_overrides, load_config
from mer_jax.training.loop import train_and_evaluate
from mer_jax.training.splits import store_splits

CLIP_SECONDS = 30.0
HELD_OUT = 0.1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.train_release",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/4q-dev"))
    parser.add_argument("--config", default="small_real",
                        help="a get_config() file, or a bundled config by name")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="default: cache/release/4q-<config>")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--workers", type=int, default=2, help="preprocessing processes")
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    config = apply_overrides(load_config(args.config), [
        *args.overrides, "iterations=1", "seeds=1", "seed=0", f"test_fraction={HELD_OUT}"])
    workdir = args.workdir or args.cache_dir / "release" / f"4q-{Path(args.config).stem}"
    store_path = preprocess(args.data_dir, PreprocessConfig.for_clip(
        "spleeter4", args.clip_seconds, config.spectrogram), args.cache_dir, args.workers)
    train_and_evaluate(config, store_path, workdir, "mixed", 1)
    store = FeatureStore(store_path)
    splits = store_splits(workdir / "splits.json", store, 1, config)
    tables = read_iterations(sorted((workdir / "predictions").glob("mixed_*iteration_1.csv")))
    evaluation = evaluate.evaluate_iterations(
        tables, train_labels=baselines.training_labels_from_splits(splits, store.ids,
                                                                    store.labels),
        categorical=True)
    gate = verdict.quadrant_skill(evaluation, "mixed")
    low, high = gate.interval
    print(f"held-out check ({gate.songs} songs): quadrant accuracy {gate.accuracy:.1%} (95% CI "
          f"{low:.1%}-{high:.1%}; the constant quadrant {gate.accuracy_constant:.1%})")
    print(f"predict with: python -m mer_jax.predict --checkpoint {workdir} SONG ...")
    print(workdir.resolve())
    return 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
