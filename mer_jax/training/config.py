"""Training configuration, loaded from ``configs/NAME.py`` files that define ``get_config()``."""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import re
from pathlib import Path

from mer_jax.features.model_input import TIME_POOLS
from mer_jax.features.spectrogram import KINDS as SPECTROGRAM_KINDS
from mer_jax.model import ModelConfig

LR_SCHEDULES = ("constant", "cosine")   # steps.learning_rate makes them


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved with the run as JSON).

    spectrogram: the spectrogram the model is trained on, "stft" (the paper's) or "mel"
        (``mer_jax.features.spectrogram``): the pipelines preprocess with it, and training
        refuses a store made with the other.
    time_bins: model input width; the store's 2048 frames are resized once at load when smaller.
    time_pool: how: "resize" (the paper's bilinear resize) or "mean" (block averages, every
        stored frame counts; needs a divisor of the stored width).
    crop_bins: None, or train on random crops of this many time bins (an augmentation: a new
        offset per model, step and song, seeded) and evaluate on the whole input; needs
        model.summary "pool" (a model that takes any input length).
    mixup: None, or train on mixup pairs of each batch's songs with weights ~ Beta(mixup, mixup)
        (an augmentation; labels mixed as Gaussian mixtures, ``data.mixup``).
    steps_per_epoch: None = ceil(training songs / batch_size) (PMEmo's 613 gave the paper's 77;
        the largest training set's when the splits' sizes differ).
    eval_batch_size: songs per evaluation call (the validation passes and the final
        predictions); None = batch_size; never more than the largest test set (padding). The
        values do not depend on it (the model has no batch statistics) beyond float rounding,
        the speed does: on the H200 the paper CRNN's forward took 0.026 s at batch 8, under 1 ms
        of it arithmetic at the chip's peak, and the validation passes were half the projected
        CRNN time (BENCHMARKS.md).
    seeds: S >= 1 model seeds per Monte-Carlo iteration; the K = S x iterations models (seed
        values seed, seed + 1, ..., each with its own init, dropout and batch-order streams) are
        trained together by one compiled step; the Random Forests take the same seeds.
    test_songs_from: None (Monte-Carlo splits: test_fraction of the songs, drawn by split_seed)
        or a glob of prediction tables (``*iteration_<N>.csv``, e.g. the paper authors'
        ``paper_predictions/crnn_iteration_*.csv``): iteration N then tests the store's songs
        that table N tested and trains on all the others, so that the models are scored on
        the same songs as those tables' models, song by song (``splits.splits_from_tables``).
    lr_schedule: "constant" (the paper) or "cosine" (linear warm-up over warmup_steps, then a
        cosine decay to 0 at the last step).
    models_in_parallel: how many of the K models one compiled step vmaps together (the groups are
        called in turn). None = one per device: 1 on one device, measured fastest per model on a
        2-core CPU (vmapped 2-4x slower) and on an H200 with the paper's CRNN (10 vmapped: 0.77x the
        per-model rate of one at a time; XLA's GPU autotuner failed compiling 20, BENCHMARKS.md); on
        several devices (of one or more processes) each trains its own. "auto": on accelerators as
        many as fit in 80% of the devices' free memory by the memory analyses of the compiled
        train step and evaluation call, the larger (K when the devices do not report their
        memory), 1 on CPU. An int: that many.
    """

    model: ModelConfig = ModelConfig()
    spectrogram: str = "stft"
    time_bins: int = 2048
    log_input: bool = False
    time_pool: str = "resize"
    crop_bins: int | None = None
    mixup: float | None = None
    batch_size: int = 8
    learning_rate: float = 1e-4
    epochs: int = 4
    steps_per_epoch: int | None = None
    eval_every: int = 7
    eval_batch_size: int | None = None
    loss: str = "mse"                    # "mse" (paper) or "gaussian_kl"
    iterations: int = 10
    test_fraction: float = 0.2
    split_seed: int = 0
    test_songs_from: str | None = None
    seed: int = 0
    seeds: int = 1
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    checkpoint_every: int = 50
    models_in_parallel: int | str | None = None
    prefetch: int = 3

    def __post_init__(self):
        if self.loss not in ("mse", "gaussian_kl"):
            raise ValueError(f"loss must be 'mse' or 'gaussian_kl', not {self.loss!r}")
        if self.spectrogram not in SPECTROGRAM_KINDS:
            raise ValueError(f"spectrogram must be one of {SPECTROGRAM_KINDS}, not "
                             f"{self.spectrogram!r}")
        if self.time_pool not in TIME_POOLS:
            raise ValueError(f"time_pool must be one of {TIME_POOLS}, not {self.time_pool!r}")
        if self.crop_bins is not None and (self.model.summary != "pool"
                                           or not 0 < self.crop_bins <= self.time_bins
                                           or not self.model.time_left(self.crop_bins)):
            raise ValueError(f"crop_bins {self.crop_bins} needs model.summary 'pool' and "
                             f"crop_bins <= time_bins ({self.time_bins}), long enough for the "
                             "conv blocks to leave a time bin")
        if self.mixup is not None and not self.mixup > 0:
            raise ValueError(f"mixup must be None or a Beta parameter > 0, not {self.mixup!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not "
                             f"{self.lr_schedule!r}")
        if not (self.models_in_parallel in (None, "auto") or (
                isinstance(self.models_in_parallel, int) and self.models_in_parallel >= 1)):
            raise ValueError(f"models_in_parallel must be None, 'auto' or an int >= 1, not "
                             f"{self.models_in_parallel!r}")
        if self.eval_batch_size is not None and not (
                isinstance(self.eval_batch_size, int) and self.eval_batch_size >= 1):
            raise ValueError(f"eval_batch_size must be None or an int >= 1, not "
                             f"{self.eval_batch_size!r}")
        if self.test_songs_from is not None and not (
                isinstance(self.test_songs_from, str) and self.test_songs_from.strip()):
            raise ValueError(f"test_songs_from must be None or a glob of prediction tables, not "
                             f"{self.test_songs_from!r}")
        if self.seeds < 1 or self.iterations < 1:
            raise ValueError(f"seeds and iterations must be >= 1 (got {self.seeds}, "
                             f"{self.iterations})")

    @property
    def eval_batch(self) -> int:
        """Songs per evaluation call: eval_batch_size, else batch_size."""
        return self.eval_batch_size or self.batch_size

    @property
    def seed_values(self) -> list[int]:
        """The S model seeds: seed, seed + 1, ..., seed + S - 1."""
        return [self.seed + s for s in range(self.seeds)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (e.g. a saved run's ``config``); unknown keys raise."""
        return _from_dict(cls, values)


def _from_dict(cls, values: dict):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise KeyError(f"unknown {cls.__name__} fields {unknown} (saved by a newer mer-jax?)")
    out = {}
    for name, value in values.items():
        if name == "model":
            value = _from_dict(ModelConfig, value)
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        out[name] = value
    return cls(**out)


def bundled_configs() -> list[str]:
    """Names of the configs installed with mer-jax (the ``configs`` package)."""
    spec = importlib.util.find_spec("configs")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return sorted({p.stem for folder in folders for p in Path(folder).glob("*.py")
                   if not p.stem.startswith("_")})


def resolve_config(spec: os.PathLike | str) -> Path:
    """A config file: ``spec`` itself when it is a file, else the bundled config of that name
    (``"paper"`` -> configs/paper.py, found wherever mer-jax is installed)."""
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if re.fullmatch(r"[A-Za-z_]\w*", name) and name in bundled_configs():
        return Path(importlib.util.find_spec(f"configs.{name}").origin)
    raise FileNotFoundError(f"config not found: {spec} (a file, or one of the bundled configs "
                            f"{bundled_configs()})")


def load_config(spec: os.PathLike | str) -> TrainConfig:
    """Import a config file (or a bundled config by name, see ``resolve_config``) and call its
    ``get_config()``."""
    path = resolve_config(spec)
    spec = importlib.util.spec_from_file_location(f"mer_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"{path}: get_config() must return a TrainConfig")
    return config


def apply_overrides(config, overrides: list[str]):
    """``["learning_rate=3e-4", "model.dropout=0.2"]`` -> a new config (values: Python literals)."""
    for item in overrides:
        key, _, text = item.partition("=")
        if not _:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        config = _replace(config, key.strip().split("."), value)
    return config


def _replace(obj, path: list[str], value):
    field = path[0]
    if not dataclasses.is_dataclass(obj) or field not in {f.name for f in dataclasses.fields(obj)}:
        raise KeyError(f"unknown config field {'.'.join(path)!r} in {type(obj).__name__}")
    if len(path) > 1:
        value = _replace(getattr(obj, field), path[1:], value)
    elif isinstance(getattr(obj, field), tuple) and isinstance(value, list):
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return dataclasses.replace(obj, **{field: value})
