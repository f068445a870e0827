"""The whole experiment: preprocess -> CRNN mixed and sep -> Random Forest mixed and sep ->
evaluation -> report. Prints the report's path on its last line.

    python -m pipelines.experiment --config configs/NAME.py --data-dir DIR --workdir WORK \
        [--dataset auto|pmemo|emomusic|deam|csv|4q] [--weights-dir W] \
        [--separator spleeter4|umxhq|umxl|oracle|stems:DIR] \
        [--cache-dir cache] [--iterations K] [--clip-seconds 45] [--[no-]forests-alongside]
        [--distributed | --reuse-from OTHER_WORKDIR]

WORK/splits.json          the Monte-Carlo splits (stratified by quadrant for 4Q), shared by the
                          CRNN and the RF
                          (--set test_songs_from=GLOB: the test songs of earlier tables)
WORK/crnn/                training runs (predictions/, checkpoints/, metrics, loss curves)
WORK/rf/predictions/      the forests' prediction tables
WORK/evaluation/{crnn,rf} per-song KL, stats.csv, baselines.csv, metrics.csv, histograms
WORK/report/              table1_crnn.csv, table2_rf.csv, figures 2-4 and report.md
Finished stages are recorded in WORK/stages.json and skipped on rerun; an interrupted stage
resumes (preprocessing per song, training from its latest checkpoint, forests per iteration).
On a GPU/TPU the forests are fitted in a CPU-only process while the CRNNs train (the cores are
idle then; ``--no-forests-alongside`` fits them after): the experiment takes about the longer of
the two instead of their sum. Their tables are the same either way.
Full reproduction on PMEmo: ``--data-dir /path/to/PMEmo2019 --config configs/paper.py``.
``--distributed`` (``srun`` on several nodes, see mer_jax.distributed and
pipelines/batch/paper_multinode.sbatch): all processes train the CRNNs together, their models
sharded over every device; process 0 preprocesses first, fits the forests and reports.
``--reuse-from OTHER``: each stage that OTHER finished with the same key (the same inputs as made
and the same settings) is copied instead of recomputed: comparing separators on one dataset, the
mixed CRNN and forests are done once.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from mer_jax import audio as audio_io
from mer_jax import baselines, distributed, evaluate, files, forest, report, runtime
from mer_jax.data import read_dataset
from mer_jax.kl import MIN_STD
from mer_jax.predictions import read_iterations
from mer_jax.preprocess import PreprocessConfig, preprocess
from mer_jax.runtime import run_command
from mer_jax.separation import use_weights_dir
from mer_jax.store import FeatureStore
from mer_jax.training import data
from mer_jax.training.config import TrainConfig, apply_overrides, load_config
from mer_jax.training.loop import train_and_evaluate
from mer_jax.training.splits import store_splits
from pipelines.preprocess import add_source_arguments

DEFAULT_MIN_STD = MIN_STD


@dataclasses.dataclass(frozen=True)
class ExperimentSettings:
    config: TrainConfig
    data_dir: Path
    workdir: Path
    separator: str = "spleeter4"
    cache_dir: Path = Path("cache")
    clip_seconds: float = audio_io.CLIP_SECONDS
    iterations: int | None = None
    workers: int = 1
    median: str = "true"
    min_std: float = DEFAULT_MIN_STD
    forest: forest.ForestConfig = forest.ForestConfig()
    dataset: str = "auto"        # the reader (mer_jax.data.DATASETS), detected by default
    forests_alongside: bool | None = None   # fit the forests while the CRNNs train (None: on
                                            # an accelerator, where they use idle CPU cores)


class Stages:
    """WORK/stages.json: name -> key of the inputs it was done with."""

    def __init__(self, path: Path):
        self.path = path
        self.done = json.loads(path.read_text()) if path.is_file() else {}

    def is_done(self, name: str, key: str) -> bool:
        return self.done.get(name) == key

    def mark(self, name: str, key: str) -> None:
        self.done[name] = key
        if distributed.is_main():
            files.write_json(self.path, self.done)


_key = files.fingerprint


def clamped_count(tables, min_std: float) -> int:
    return int(sum(np.sum(p[:, 2:] < min_std) for t in tables for p in t.predictions.values()))


def _reuse(stage: str, key: str, source: Path | None, work: Path, patterns: list[str],
           stages: Stages) -> bool:
    """Copy a stage's outputs from another experiment that did it with the same key."""
    if not patterns or source is None or not Stages(source / "stages.json").is_done(stage, key):
        return False
    for pattern in patterns:     # this workdir's own outputs of the stage are stale: drop them
        for path in work.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for pattern in patterns:
        for path in source.glob(pattern):
            target = work / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target)
    stages.mark(stage, key)
    print(f"{stage}: copied from {source} (done there with the same inputs and settings)",
          file=sys.stderr, flush=True)
    return True


def stage_keys(store: FeatureStore, config: TrainConfig, k_models: int, splits,
               forest_config: forest.ForestConfig = forest.ForestConfig()) -> dict:
    """Keys of the four model stages, each over its settings and its inputs as made
    (``FeatureStore.inputs_key``: a song whose audio changed changes them): the "mixed" ones do
    not depend on the separator, the forests' not on the spectrograms."""
    keys = {}
    for mode in data.MODES:
        keys[f"crnn_{mode}"] = _key("crnn", mode, store.inputs_key(f"{mode}/spectrogram", splits),
                                    config.to_dict(), k_models, splits)
        keys[f"rf_{mode}"] = _key("rf", mode, store.inputs_key(f"{mode}/opensmile", splits),
                                  dataclasses.asdict(forest_config), splits,
                                  config.seed_values)
    return keys


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    report: Path
    store: Path
    evaluations: dict        # "CRNN" / "RF" -> mer_jax.evaluate.Evaluation


def _store_and_splits(settings: ExperimentSettings, k_models: int, progress: bool):
    """The preprocessed store's path and the splits; in a multi-host run process 0 makes them
    while the others wait, then finds them made."""
    def make(show):
        path = preprocess(settings.data_dir, PreprocessConfig.for_clip(
            settings.separator, settings.clip_seconds, settings.config.spectrogram),
            settings.cache_dir, settings.workers,
            progress=show, dataset=read_dataset(settings.data_dir, settings.dataset))
        store = FeatureStore(path)
        return path, store_splits(settings.workdir / "splits.json", store, k_models,
                                  settings.config)
    made = make(progress) if distributed.is_main() else None
    distributed.barrier("preprocessed")
    return made or make(False)


def run_experiment(settings: ExperimentSettings, progress: bool = True,
                   reuse_from: Path | None = None) -> ExperimentResult | None:
    """Run (or resume) the experiment. ``reuse_from``: another experiment's workdir; each of its
    stages done with this one's key, i.e. from the same inputs and settings, is copied instead of
    recomputed (e.g. with another separator: the "mixed" CRNN and forests; with other
    spectrograms: both forests). In a multi-host run (``--distributed``) every process trains
    the CRNNs together; process 0 alone then fits the forests, evaluates and reports, and the
    others return None."""
    if reuse_from is not None and jax.process_count() > 1:
        raise ValueError("reuse_from is for a single-process run")
    work = settings.workdir
    work.mkdir(parents=True, exist_ok=True)
    stages = Stages(work / "stages.json")
    config = settings.config
    k_models = settings.iterations or config.iterations

    store_path, splits = _store_and_splits(settings, k_models, progress)
    store = FeatureStore(store_path)
    ids = [store.ids[i] for i in store.done]
    keys = stage_keys(store, config, k_models, splits, settings.forest)
    _model_stages(settings, store_path, splits, keys, stages, reuse_from, k_models, progress)
    if not distributed.is_main():    # a multi-host run's other processes only help train
        return None

    evaluations, clamped = evaluate_models(work, splits, store, settings)
    failures = store.failures()
    notes = [f"data: {settings.data_dir} ({len(ids)} songs preprocessed, {len(failures)} failed, "
             f"{len(store.attrs.get('skipped', {}))} skipped by the reader); store {store_path}",
             f"separator: {settings.separator}; clip {settings.clip_seconds:g} s; "
             f"{k_models} iterations x {config.seeds} model seed(s) {config.seed_values}; "
             + (f"test songs of {config.test_songs_from} (the same songs, song by song)"
                if config.test_songs_from else
                f"Monte-Carlo splits, test fraction {config.test_fraction}"),
             f"CRNN config: {config.to_dict()}",
             f"Random Forest config: {dataclasses.asdict(settings.forest)}",
             f"predicted standard deviations below {settings.min_std} are clamped to it before "
             f"the KL (CRNN: {clamped['CRNN']} values, RF: {clamped['RF']} values); the "
             f"paper's linear output layer can emit sigma <= 0",
             f"medians: {settings.median} (--median paper for the authors' convention)"]
    if store.attrs["dataset"].get("categorical"):
        notes.append("labels are Russell quadrants: the targets are quadrant-centre proxies "
                     "(0.25 / 0.75, std 0.144), so the KL only ranks the models; the skill gate "
                     "and the verdict use quadrant accuracy (mer_jax.quadrants, mer_jax.verdict)")
    report_path = report.write_report(
        work / "report", evaluations,
        {m: work / "crnn" / f"loss_{m}.png" for m in data.MODES},
        title=f"Mixed vs separated inputs: {Path(settings.data_dir).name}, "
              f"separator {settings.separator}", notes=notes)
    return ExperimentResult(report_path, Path(store_path), evaluations)


REUSABLE = {f"{model}_{mode}": patterns  # a stage's outputs, by its name
            for mode in data.MODES for model, patterns in (
                ("crnn", [f"crnn/predictions/{mode}_*", f"crnn/*_{mode}.*",
                          f"crnn/models/{mode}_*"]),
                ("rf", [f"rf/predictions/{mode}_*", f"rf/predictions/forest_{mode}.json"]))}


def _model_stages(settings: ExperimentSettings, store_path: Path, splits: list[dict], keys: dict,
                  stages: Stages, reuse_from: Path | None, k_models: int, progress: bool) -> None:
    """The CRNN stages, and on process 0 the forest stages: in a CPU process alongside the
    CRNNs (``settings.forests_alongside``; None: on an accelerator) or after them. A stage
    already done, or copied from ``reuse_from`` (REUSABLE), is skipped."""
    work, config = settings.workdir, settings.config

    def done(stage: str) -> bool:
        return stages.is_done(stage, keys[stage]) or _reuse(
            stage, keys[stage], reuse_from, work, REUSABLE.get(stage, []), stages)

    forest_modes = [m for m in data.MODES if distributed.is_main() and not done(f"rf_{m}")]
    fit = functools.partial(_fit_forests, store_path, splits, work / "rf" / "predictions",
                            settings.forest, config.seed_values)
    alongside = settings.forests_alongside
    if alongside is None:
        alongside = jax.default_backend() != "cpu"
    with contextlib.ExitStack() as stack:
        forests = _start_alongside(stack, fit, forest_modes) if forest_modes and alongside else None
        for mode in data.MODES:
            if not done(f"crnn_{mode}"):
                train_and_evaluate(config, store_path, work / "crnn", mode, k_models,
                                   progress=progress, splits_path=work / "splits.json")
                stages.mark(f"crnn_{mode}", keys[f"crnn_{mode}"])
        if forests is not None:
            forests.result()           # the child's exception, if any, is raised here
        elif forest_modes:
            fit(forest_modes, progress)
    for mode in forest_modes:
        stages.mark(f"rf_{mode}", keys[f"rf_{mode}"])


def _fit_forests(store_path: Path, splits: list[dict], out_dir: Path,
                 forest_config: forest.ForestConfig, seeds: list[int], modes: list[str],
                 progress: bool) -> None:
    for mode in modes:
        forest.train_forests(store_path, splits, mode, out_dir, forest_config,
                             progress=progress, seeds=seeds)


def _niced() -> None:
    """A forest process's initialiser: a lower priority than the trainer's, so that the trainer
    gets the CPU time it needs to feed the device and the forests take the rest."""
    os.nice(10)


def _start_alongside(stack: contextlib.ExitStack, fit, modes: list[str]):
    """Start ``fit(modes, False)`` in a CPU-only child process (``JAX_PLATFORMS=cpu``, lower
    priority) while this process trains the CRNNs; returns its future. The forests' tables are
    the same as in this process (their seeds fix them)."""
    with runtime.cpu_only_children():
        executor = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_niced))
        future = executor.submit(fit, modes, False)    # the process starts here, inside
    print(f"random forests ({', '.join(modes)}) fitting in a CPU process alongside the CRNNs",
          file=sys.stderr, flush=True)
    return future


def evaluate_models(work: Path, splits: list[dict], store: FeatureStore,
                    settings: ExperimentSettings) -> tuple[dict, dict]:
    """Evaluate the CRNN's and the forests' tables with the baselines of each iteration's
    training split; writes WORK/evaluation/{crnn,rf}. Returns (evaluations, clamped counts)."""
    evaluations, clamped = {}, {}
    train_labels = baselines.training_labels_from_splits(splits, store.ids, store.labels)
    for model, folder in (("CRNN", work / "crnn" / "predictions"),
                          ("RF", work / "rf" / "predictions")):
        tables = read_iterations(sorted(folder.glob("*_iteration_*.csv")))
        clamped[model] = clamped_count(tables, settings.min_std)
        evaluations[model] = evaluate.evaluate_iterations(
            tables, settings.median, settings.min_std, train_labels, model,
            categorical=bool(store.attrs["dataset"].get("categorical", False)))
        evaluate.write_evaluation(evaluations[model], work / "evaluation" / model.lower(),
                                  title=f"{model}: KL divergence, mixed vs sep")
    return evaluations, clamped


class Launch(NamedTuple):
    distributed: bool               # join a multi-host job
    reuse_from: Path | None         # copy the stages another workdir did with the same keys


def parse_args(argv=None) -> tuple[ExperimentSettings, Launch]:
    """The settings, and how to run them (``--distributed``, ``--reuse-from``)."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True,
                        help="a get_config() file, or a bundled config by name: paper, small")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    add_source_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--clip-seconds", type=float, default=audio_io.CLIP_SECONDS)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, help="preprocessing processes")
    parser.add_argument("--median", choices=("true", "paper"), default="true")
    parser.add_argument("--min-std", type=float, default=DEFAULT_MIN_STD)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--rf-max-features", type=_max_features, default=None,
                        help="features tried per split by the Random Forest: all (the paper, "
                             "default), a fraction such as 0.2, or 'sqrt'")
    parser.add_argument("--forests-alongside", action=argparse.BooleanOptionalAction,
                        default=None, help="fit the Random Forests in a CPU process while the "
                        "CRNNs train (default: on a GPU/TPU, not on CPU, where both want the "
                        "same cores)")
    parser.add_argument("--distributed", action="store_true",
                        help="one of the processes of a multi-host job (see mer_jax.distributed)")
    parser.add_argument("--reuse-from", type=Path, default=None, metavar="WORKDIR",
                        help="another experiment's workdir: each stage it finished from the same "
                             "inputs and settings is copied, not recomputed (with another "
                             "separator: the mixed CRNN and forests; with --set spectrogram=mel: "
                             "the forests)")
    args = parser.parse_args(argv)
    if args.reuse_from is not None and args.distributed:
        parser.error("--reuse-from is for a single-process run, not with --distributed")
    if args.reuse_from is not None and not (args.reuse_from / "stages.json").is_file():
        parser.error(f"--reuse-from {args.reuse_from}: not an experiment's workdir (it has no "
                     "stages.json)")
    use_weights_dir(args.weights_dir)
    config = apply_overrides(load_config(args.config), args.overrides)
    return ExperimentSettings(config, args.data_dir, args.workdir, args.separator, args.cache_dir,
                              args.clip_seconds, args.iterations, args.workers, args.median,
                              args.min_std, forest.ForestConfig(max_features=args.rf_max_features),
                              args.dataset, args.forests_alongside), Launch(
                                  args.distributed, args.reuse_from)


def _max_features(text: str) -> float | str:
    return text if text in ("sqrt", "log2") else float(text)


def main(argv=None) -> int:
    settings, launch = parse_args(argv)
    if launch.distributed:
        distributed.initialize()
    result = run_experiment(settings, reuse_from=launch.reuse_from)
    if result is not None:
        print(result.report.resolve())
    return 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
