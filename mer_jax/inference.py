"""A trained CRNN applied to any audio file: model loading, analysis windows, aggregation.

The features are made exactly as in training, per window: the window (the training clip's length,
45 s in the paper) is cut from the decoded song (resampled to the training rate, channels kept),
zero-padded when the song is shorter, separated into the four stems for a ``sep`` model, turned
into |STFT| spectrograms with the store's spectrogram config and into a model input by
``features.model_input`` (time resize, log1p if the config says so). Every window has the
same shapes, so the separator, the spectrogram and the model compile once.

Standard deviations: a model with a softplus std head (``configs/small.py``) outputs positive
values by construction; the paper's linear head can output sigma <= 0, so every window's sigma is
raised to ``min_std`` (0.01 by default, the evaluation's floor) and the number raised is
reported. Songs longer than one window are read as windows every ``hop`` seconds (the last one
ends at the song's end); the song's distribution is the equal-weight mixture of the windows'
Gaussians: mean = mean of the window means, variance = mean of the window variances + variance of
the window means (the law of total variance).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from mer_jax import audio as audio_io
from mer_jax.data.songs import LABEL_NAMES
from mer_jax.kl import MIN_STD
from mer_jax.features.config import PreprocessConfig
from mer_jax.features.model_input import MODES, input_channels, model_input
from mer_jax.features.spectrogram import spectrogram
from mer_jax.model import param_shapes, predict
from mer_jax.predictions import table_key, table_name
from mer_jax.separation import FILE_SEPARATORS, make_separator
from mer_jax.store import FeatureStore
from mer_jax.training.config import TrainConfig   # the saved config's schema (no training code)

WINDOW_BATCH = 8        # windows per compiled model call (fixed shape: one compilation)


class ModelLoadError(ValueError):
    """A checkpoint path that holds no usable model; the message says what was looked for."""


class PredictionError(RuntimeError):
    """A file whose prediction failed after decoding; the message names the file."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """One trained CRNN and everything needed to make its inputs."""

    source: str                       # the model folder, or checkpoints/<mode>@step
    mode: str
    iteration: int
    config: TrainConfig
    preprocess: PreprocessConfig
    input_shape: tuple[int, int, int]  # (freq, time, channels)
    params: dict

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the parameters' paths, shapes, dtypes and values: a model
        retrained in the same folder is another model."""
        digest = hashlib.sha256()
        for key, leaf in jax.tree_util.tree_flatten_with_path(self.params)[0]:
            leaf = np.ascontiguousarray(leaf)
            digest.update(f"{jax.tree_util.keystr(key)}{leaf.shape}{leaf.dtype}".encode())
            digest.update(leaf.tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {"model": self.source, "params_sha256": self.digest, "mode": self.mode,
                "iteration": self.iteration, "separator_in_training": self.preprocess.separator,
                "window_seconds": self.preprocess.clip_seconds,
                "std_activation": self.config.model.std_activation}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path}: unreadable ({err})") from None


def _preprocess_of(saved: dict, workdir: Path | None, where: Path) -> PreprocessConfig:
    """The preprocessing config saved with the model, else the one of the store it trained on."""
    if saved.get("preprocess"):
        return PreprocessConfig.from_dict(saved["preprocess"])
    run = workdir / f"run_{saved['mode']}.json" if workdir else None
    if run is not None and run.is_file():
        store = Path(_read_json(run)["store"])
        if store.exists():
            return PreprocessConfig.from_dict(FeatureStore(store).attrs["config"])
    raise ModelLoadError(f"{where}: no preprocessing config saved with the model and its "
                         "training store is gone; retrain with this version of mer-jax")


def _load_folder(folder: Path, mode: str | None) -> LoadedModel:
    saved = _read_json(folder / "model.json")
    if mode is not None and saved["mode"] != mode:
        raise ModelLoadError(f"{folder} is a {saved['mode']!r} model, not {mode!r}")
    config = TrainConfig.from_dict(saved["config"])
    shape = tuple(saved["input_shape"])
    workdir = folder.parent.parent if folder.parent.name == "models" else None
    target = param_shapes(config.model, shape)
    params = ocp.StandardCheckpointer().restore(folder.resolve() / "params", target)
    return LoadedModel(str(folder), saved["mode"], int(saved["iteration"]), config,
                       _preprocess_of(saved, workdir, folder), shape, params)


def _load_latest_checkpoint(workdir: Path, mode: str, iteration: int,
                            seed: int | None) -> LoadedModel:
    """From the run's ``checkpoints/<mode>/<fingerprint>`` (still training, or never exported).
    The only serving path that needs training code: a checkpoint holds the optimizer's state."""
    from mer_jax.training import steps
    run = _read_json(workdir / f"run_{mode}.json")
    config = TrainConfig.from_dict(run["config"])
    k_splits = int(run["iterations"])
    seeds = run.get("seeds", [config.seed])
    if not 1 <= iteration <= k_splits:
        raise ModelLoadError(f"{workdir}: iteration {iteration} not in 1..{k_splits}")
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ModelLoadError(f"{workdir}: seed {seed} not among the run's seeds {seeds}")
    folder = workdir / "checkpoints" / mode / run.get("fingerprint", "")
    manager = ocp.CheckpointManager(folder.resolve())
    step = manager.latest_step()
    if step is None:
        raise ModelLoadError(f"{folder}: no checkpoint saved yet")
    preprocess = _preprocess_of({"mode": mode}, workdir, workdir)
    shape = (preprocess.spectrogram.bins, config.time_bins, input_channels(mode))
    rate = steps.learning_rate(config.learning_rate, config.lr_schedule, int(run["steps"]),
                               config.warmup_steps)
    one = jax.eval_shape(lambda: steps.create_state(config.model, shape, jax.random.PRNGKey(0),
                                                    rate))
    stacked = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((len(seeds) * k_splits, *s.shape), s.dtype), one)
    state = manager.restore(step, args=ocp.args.StandardRestore(stacked))
    k = seeds.index(seed) * k_splits + iteration - 1
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x[k]), state.params)
    return LoadedModel(f"{folder}@{step}", mode, iteration, config, preprocess, shape, params)


def _model_folder(path: Path, mode: str, iteration: int, seed: int | None) -> Path | None:
    """The exported model of (mode, iteration, seed) in a workdir; seed None: the one-seed name,
    else the lowest seed's."""
    if seed is not None:
        candidates = [path / "models" / table_name(mode, iteration, seed)]
    else:
        candidates = [path / "models" / table_name(mode, iteration)] + sorted(
            (path / "models").glob(f"{mode}_seed_*_iteration_{iteration}"),
            key=lambda p: table_key(p)[0])
    return next((c for c in candidates if (c / "model.json").is_file()), None)


def load_model(checkpoint: os.PathLike | str, mode: str | None = None,
               iteration: int = 1, seed: int | None = None) -> LoadedModel:
    """``checkpoint``: one model folder (``models/<name>``, holding model.json) or a training
    workdir (``mer_jax.train --workdir``): its exported model of ``iteration`` (and ``seed``;
    None: the run's first), else the latest Orbax checkpoint of its run. ``mode`` None: the
    folder's mode, or "mixed" for a workdir that has it, else its only mode."""
    path = Path(checkpoint)
    if mode is not None and mode not in MODES:
        raise ModelLoadError(f"mode must be one of {MODES}, not {mode!r}")
    if (path / "model.json").is_file():
        return _load_folder(path, mode)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such checkpoint folder")
    trained = [m for m in MODES if _model_folder(path, m, iteration, seed) is not None
               or (path / "checkpoints" / m).is_dir()]
    if mode is None:
        if not trained:
            raise ModelLoadError(f"{path}: neither a model folder (model.json) nor a training "
                                 "workdir (models/ or checkpoints/)")
        mode = "mixed" if "mixed" in trained else trained[0]
    folder = _model_folder(path, mode, iteration, seed)
    if folder is not None:
        return _load_folder(folder, mode)
    if (path / f"run_{mode}.json").is_file() and (path / "checkpoints" / mode).is_dir():
        return _load_latest_checkpoint(path, mode, iteration, seed)
    raise ModelLoadError(f"{path}: no {mode!r} model of iteration {iteration} (looked for "
                         f"models/{table_name(mode, iteration, seed)}/ and checkpoints/{mode}/)")


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Starts of the analysis windows: every ``hop`` samples, plus one ending at the song's end
    when the hops miss it; ``[0]`` for a song no longer than one window (it is zero-padded)."""
    if hop <= 0:
        raise ValueError(f"hop must be > 0, not {hop}")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] != n_samples - window:
        starts.append(n_samples - window)
    return starts


def aggregate(windows: np.ndarray) -> np.ndarray:
    """``(W, 4)`` window predictions (means, stds) -> ``(4,)`` of their equal-weight mixture."""
    means, stds = windows[:, :2], windows[:, 2:]
    variance = np.mean(stds ** 2, axis=0) + np.var(means, axis=0)
    return np.concatenate([means.mean(axis=0), np.sqrt(variance)])


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One file's prediction. ``values``: (4,) in LABEL_NAMES order, aggregated over ``windows``
    ``(W, 4)``, whose spans in seconds are ``spans`` ``(W, 2)``; ``clamped``: window sigmas
    raised to the floor."""

    path: str
    values: np.ndarray
    windows: np.ndarray
    spans: np.ndarray
    duration_seconds: float
    clamped: int
    silent: bool = False          # the file's peak is below -90 dBFS (audio.is_silent)

    def as_dict(self, with_windows: bool = True) -> dict:
        row = {"path": self.path, **{t: float(v) for t, v in zip(LABEL_NAMES, self.values)}}
        if with_windows:
            row["duration_seconds"] = round(self.duration_seconds, 3)
            row["stds_clamped"] = self.clamped
            row["silent"] = self.silent
            row["windows"] = [{"start_seconds": round(float(a), 3),
                               "end_seconds": round(float(b), 3),
                               **{t: float(v) for t, v in zip(LABEL_NAMES, w)}}
                              for (a, b), w in zip(self.spans, self.windows)]
        return row


class Predictor:
    """Applies one loaded model to audio files (see the module docstring).

    separator: None = the one the model was trained with, except stems read from files
    ("oracle", "stems:DIR", which an arbitrary file does not have): then "spleeter4".
    hop_seconds: None = half a window.
    """

    def __init__(self, model: LoadedModel, separator: str | None = None,
                 hop_seconds: float | None = None, min_std: float = MIN_STD,
                 cache_dir: os.PathLike | str = "cache"):
        self.model, self.min_std = model, min_std
        pre = model.preprocess
        self.window = pre.clip_samples
        self.hop = int(round((hop_seconds if hop_seconds is not None
                              else pre.clip_seconds / 2) * pre.sample_rate))
        if self.hop <= 0:
            raise ValueError(f"hop must be > 0 seconds, not {hop_seconds}")
        self.separator_name = None
        self._separator = None
        if model.mode == "sep":
            self.separator_name = separator or (
                "spleeter4" if pre.separator.startswith(FILE_SEPARATORS) else pre.separator)
            self._separator = make_separator(self.separator_name, cache_dir)
        self._apply = jax.jit(functools.partial(predict, model_config=model.config.model))

    def describe(self) -> dict:
        return {**self.model.describe(), "separator": self.separator_name,
                "hop_seconds": self.hop / self.model.preprocess.sample_rate,
                "min_std": self.min_std}

    def _window_input(self, clip: np.ndarray, path: Path, start: int) -> np.ndarray:
        """``(channels, window)`` starting ``start`` samples into the song ->
        ``(freq, time, C)``."""
        pre = self.model.preprocess
        if self._separator is None:
            waves = audio_io.to_mono(clip)[None]
        else:
            waves = self._separator(clip, path, path.stem, start)
        spectra = np.asarray(spectrogram(jnp.asarray(waves), pre.spectrogram, pre.sample_rate))
        config = self.model.config
        return model_input(spectra, config.time_bins, config.log_input, config.time_pool)

    def __call__(self, path: os.PathLike | str) -> Prediction:
        """Raises ``audio.AudioError``, ``separation.SeparationError`` or PredictionError, each
        naming the file."""
        path = Path(path)
        pre = self.model.preprocess
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audio_io.SilentAudioWarning)
            song = audio_io.load_clip(path, sample_rate=pre.sample_rate, seconds=None,
                                      mono=False)
        samples = song.samples if song.samples.ndim == 2 else song.samples[None]
        starts = window_starts(samples.shape[-1], self.window, self.hop)
        inputs = [self._window_input(audio_io.fix_length(samples[:, s:s + self.window],
                                                         self.window), path, s) for s in starts]
        outputs = []
        for k in range(0, len(inputs), WINDOW_BATCH):
            batch = np.stack(inputs[k:k + WINDOW_BATCH])
            n = len(batch)
            padded = np.concatenate([batch, np.repeat(batch[:1], WINDOW_BATCH - n, axis=0)])
            outputs.append(np.asarray(self._apply(self.model.params, padded))[:n])
        windows = np.concatenate(outputs).astype(np.float64)
        if not np.isfinite(windows).all():
            raise PredictionError(f"{path}: the model produced non-finite outputs")
        clamped = int(np.sum(windows[:, 2:] < self.min_std))
        windows[:, 2:] = np.maximum(windows[:, 2:], self.min_std)
        duration = samples.shape[-1] / pre.sample_rate
        spans = np.array([[s / pre.sample_rate, min(s + self.window, samples.shape[-1])
                           / pre.sample_rate] for s in starts])
        return Prediction(str(path), aggregate(windows), windows, spans, duration, clamped,
                          song.silent)
