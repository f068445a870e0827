"""Predict the perceived emotion of audio files with a trained CRNN.

    python -m mer_jax.predict PATH... --checkpoint DIR [--mode mixed|sep] [--out FILE.csv|FILE.json]
        [--iteration 1] [--seed S] [--hop-seconds S] [--separator spleeter4|oracle|stems:DIR]
        [--min-std 0.01]

PATH: audio files (any format libsndfile decodes, any length, sample rate and channel count) or
folders, walked recursively for audio files. DIR: a training workdir (``mer_jax.train
--workdir``; iteration 1's model of the mode unless --iteration, of the run's first seed unless
--seed) or one exported model folder.

Output per file, aggregated over the file's windows (see ``mer_jax.inference``):
path, valence_mean, arousal_mean, valence_std, arousal_std - CSV with those columns in that order
(per-window values beside it in FILE.windows.csv, the model used in FILE.meta.json), or JSON
(one object: the model used, and per file the aggregate and its windows). Without --out the CSV
goes to stdout. Files already in the output are skipped on rerun (a row is complete only with
its newline; an output of another model - its path or its parameters' SHA-256 differ - or other
settings is refused); unreadable files are reported on stderr with the reason and skipped,
silent ones predicted with a warning. Exit code 1 only when every file given failed (none
predicted, now or in an earlier run); 2 on usage errors.
The last line printed (stderr) is ``predicted N files (K already done, F failed)``.
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from mer_jax.audio import AUDIO_SUFFIXES, AudioError
from mer_jax.data.songs import LABEL_NAMES
from mer_jax.files import write_csv, write_json
from mer_jax.inference import ModelLoadError, Prediction, PredictionError, Predictor, load_model
from mer_jax.kl import MIN_STD
from mer_jax.runtime import run_command
from mer_jax.separation import SeparationError, separator_name, use_weights_dir
from mer_jax.features.model_input import MODES

CSV_HEADER = ["path", *LABEL_NAMES]
WINDOW_HEADER = ["path", "window", "start_seconds", "end_seconds", *LABEL_NAMES]


class OutputError(ValueError):
    """An --out file that holds something else (another model's predictions, another table)."""


@functools.lru_cache(maxsize=4)
def _predictor(checkpoint: str, mode: str | None, iteration: int) -> Predictor:
    return Predictor(load_model(checkpoint, mode, iteration))


def predict_file(path: os.PathLike | str, checkpoint: os.PathLike | str, mode: str | None = None,
                 iteration: int = 1) -> Prediction:
    """The prediction for one audio file (the model is loaded once and kept for later calls).

    ``result.values``: valence mean, arousal mean, valence std, arousal std (stds > 0);
    ``result.as_dict()`` adds the per-window values."""
    return _predictor(str(Path(checkpoint).resolve()), mode, iteration)(path)


def find_audio(paths: list[Path]) -> list[Path]:
    """Files as given; folders walked recursively for audio suffixes (hidden files skipped)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file()
                            and p.suffix.lower() in AUDIO_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            found.append(path)
    unique = {}
    for path in found:
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def _csv_row(prediction: Prediction) -> list[str]:
    """One row under CSV_HEADER."""
    return [prediction.path, *(f"{v:.6f}" for v in prediction.values)]


class CsvOutput:
    """FILE.csv (one row per file, appended as each completes), FILE.windows.csv, FILE.meta.json."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.windows_path = path.with_suffix(".windows.csv")
        _check_meta(path.with_suffix(".meta.json"), meta)
        self.done = self._existing()

    def _existing(self) -> set[str]:
        """Paths with a complete row; rows cut short by a kill are dropped (files rewritten)."""
        rows = _read_csv(self.path, CSV_HEADER)
        done = {r["path"] for r in rows}
        windows = [r for r in _read_csv(self.windows_path, WINDOW_HEADER) if r["path"] in done]
        write_csv(self.path, CSV_HEADER, rows)
        write_csv(self.windows_path, WINDOW_HEADER, windows)
        return {os.path.abspath(p) for p in done}

    def add(self, prediction: Prediction) -> None:
        with open(self.windows_path, "a", newline="") as f:
            writer = csv.writer(f)
            for k, ((start, end), values) in enumerate(zip(prediction.spans, prediction.windows)):
                writer.writerow([prediction.path, k, f"{start:.3f}", f"{end:.3f}",
                                 *(f"{v:.6f}" for v in values)])
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(_csv_row(prediction))
            f.flush()
            os.fsync(f.fileno())


class JsonOutput:
    """One JSON object ``{"model": {...}, "predictions": [...]}``, replaced atomically per file."""

    def __init__(self, path: Path, meta: dict):
        self.path, self.meta = path, meta
        self.rows = []
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("model") != meta:
                raise OutputError(_mismatch(path, saved.get("model"), meta))
            self.rows = saved["predictions"]
        self.done = {os.path.abspath(r["path"]) for r in self.rows}

    def add(self, prediction: Prediction) -> None:
        self.rows.append(prediction.as_dict())
        write_json(self.path, {"model": self.meta, "predictions": self.rows})


class StdoutOutput:
    def __init__(self):
        self.done: set[str] = set()
        self.writer = csv.writer(sys.stdout)
        self.writer.writerow(CSV_HEADER)

    def add(self, prediction: Prediction) -> None:
        self.writer.writerow(_csv_row(prediction))
        sys.stdout.flush()


def _read_csv(path: Path, header: list[str]) -> list[dict]:
    """The complete rows of an output table: a last line without its newline (cut by a kill,
    power loss or a full disk, perhaps inside its last number) is not one."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        text = f.read()
    text = text[:text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is not None and reader.fieldnames != header:
        raise OutputError(f"{path}: not a prediction table of this tool (header "
                         f"{reader.fieldnames}); choose another --out")
    return [r for r in reader if None not in r.values() and None not in r]


def _mismatch(path: Path, saved, meta) -> str:
    return (f"{path} holds predictions of another model or setting ({saved}), not {meta}; "
            "choose another --out")


def _check_meta(path: Path, meta: dict) -> None:
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != meta:
            raise OutputError(_mismatch(path, saved, meta))
    else:
        write_json(path, meta)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mer_jax.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="default: the model folder's mode; for a workdir, mixed if trained")
    parser.add_argument("--out", type=Path, default=None, help="FILE.csv or FILE.json")
    parser.add_argument("--iteration", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None,
                        help="model seed of a run of several seeds (default: its first)")
    parser.add_argument("--hop-seconds", type=float, default=None,
                        help="between analysis windows (default: half a window)")
    parser.add_argument("--separator", type=separator_name, default=None,
                        help="sep models: default the training one (spleeter4 for oracle and "
                             "stems:DIR); stems:DIR reads DIR/<file name>/<stem>.wav ...")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of Open-Unmix's released weights (umxhq/umxl; default "
                             "$MER_JAX_WEIGHTS)")
    parser.add_argument("--min-std", type=float, default=MIN_STD)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"),
                        help="where the separator's weights are cached")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    use_weights_dir(args.weights_dir)
    if args.out is not None and args.out.suffix.lower() not in (".csv", ".json"):
        parser.error(f"--out must end in .csv or .json, not {args.out.name!r}")
    if args.min_std <= 0:
        parser.error("--min-std must be > 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    files = find_audio(args.paths)
    if not files:
        print(f"no audio files in {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint, args.mode, args.iteration, args.seed)
        predictor = Predictor(model, args.separator, args.hop_seconds, args.min_std,
                              args.cache_dir)
    except (ModelLoadError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = predictor.describe()
    if model.mode == "sep" and model.preprocess.separator != predictor.separator_name:
        print(f"note: the model was trained on {model.preprocess.separator!r} stems; separating "
              f"with {predictor.separator_name!r}", file=sys.stderr)
    try:
        if args.out is None:
            output = StdoutOutput()
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            kind = JsonOutput if args.out.suffix.lower() == ".json" else CsvOutput
            output = kind(args.out, meta)
    except (OutputError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    todo = [f for f in files if os.path.abspath(f) not in output.done]
    failed = 0
    bar = tqdm(todo, unit="file", desc=f"predicting ({model.mode})", disable=args.quiet,
               file=sys.stderr)
    for path in bar:
        try:
            prediction = predictor(path)
        except (AudioError, SeparationError, PredictionError) as err:
            failed += 1
            bar.write(f"failed: {err}", file=sys.stderr)
            continue
        if prediction.silent:
            bar.write(f"warning: {path}: silent audio (peak below -90 dBFS); its prediction is "
                      "the model's answer to silence, not to music", file=sys.stderr)
        output.add(prediction)
    bar.close()
    print(f"predicted {len(todo) - failed} files ({len(files) - len(todo)} already done, "
          f"{failed} failed)" + (f": {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if failed and failed == len(files) else 0


# the console command / `python -m`: main() with the huge-page malloc (mer_jax.runtime)
cli = functools.partial(run_command, main)

if __name__ == "__main__":
    sys.exit(cli())
