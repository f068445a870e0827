"""Train the CRNN on one input mode over all Monte-Carlo iterations.

    python -m mer_jax.train --mode mixed|sep --config configs/NAME.py --store PATH --workdir DIR \
        [--iterations K] [--set KEY=VALUE ...] [--dry-run] [--distributed]

Trains config.seeds x iterations models (``--set seeds=3``: 3 seeds per Monte-Carlo split) with
one compiled step. Writes DIR/predictions/<mode>_iteration_N.csv (one seed) or
<mode>_seed_S_iteration_N.csv (several; the evaluation's table format), Orbax checkpoints under
DIR/checkpoints/<mode>/<fingerprint>/ (a killed run resumes from the latest one by itself; a run
with other settings starts afresh and says what changed), one exported model per seed and
iteration under DIR/models/, DIR/metrics_<mode>.jsonl, DIR/loss_<mode>.png, DIR/splits.json
(shared with the Random Forest; Monte-Carlo, or with ``--set test_songs_from=GLOB`` the test
songs of earlier prediction tables, e.g. the paper authors') and DIR/run_<mode>.json (config,
fingerprint, git commit; each start's environment under ``starts``).
``--dry-run`` builds the model, prints its input shape and, last, ``params: N``.
``--distributed``: one of several processes started together (``srun`` on Slurm; see
mer_jax.distributed): the models are sharded over the devices of all of them, one model per
device per compiled call unless ``models_in_parallel`` says otherwise; process 0 writes the files.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from mer_jax.features.spectrogram import SpectrogramConfig
from mer_jax.model import count_params, param_shapes
from mer_jax.runtime import run_command
from mer_jax.training.config import apply_overrides, load_config
from mer_jax.features.model_input import MODES, input_channels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mer_jax.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--config", type=Path, required=True,
                        help="a get_config() file, or a bundled config by name: paper, small")
    parser.add_argument("--store", type=Path, help="feature store from pipelines.preprocess")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field, e.g. model.dropout=0.2")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--distributed", action="store_true",
                        help="join the other processes of a multi-host job (jax.distributed)")
    args = parser.parse_args(argv)
    if args.distributed:
        from mer_jax import distributed
        distributed.initialize()
    config = apply_overrides(load_config(args.config), args.overrides)
    input_shape = (SpectrogramConfig.named(config.spectrogram).bins, config.time_bins,
                   input_channels(args.mode))
    if args.dry_run:
        print(f"input shape: {input_shape} (frequency, time, channels)")
        print(f"params: {count_params(param_shapes(config.model, input_shape))}")
        return 0
    if args.store is None or args.workdir is None:
        parser.error("--store and --workdir are required unless --dry-run")
    from mer_jax.store import StoreError
    from mer_jax.training.loop import train_and_evaluate
    try:
        result = train_and_evaluate(config, args.store, args.workdir, args.mode, args.iterations)
    except StoreError as err:          # e.g. a store made with another spectrogram
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{config.seeds * (args.iterations or config.iterations)} models ({config.seeds} seeds "
          f"x {args.iterations or config.iterations} iterations), {result.steps} steps, "
          f"{result.step_seconds:.3f} s/step, data wait {100 * result.data_wait_fraction:.1f}% "
          f"of step time; train step compiled {result.compilations} time(s)")
    print(f"predictions: {args.workdir / 'predictions'}")
    return 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
