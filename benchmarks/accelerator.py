"""Benchmark: mer-jax on one accelerator, sized for a 15-minute lease (not a test).

    python benchmarks/accelerator.py --audio DIR [--out DIR] [--budget 420] [--config paper]
        [--crnn CONFIG:K:C:DTYPE[:eval][:bN][:loop][:LSTM] ...] [--crnn-more ...] [--songs 80]
        [--workers N] [--weights-fp16 FILE] [--train-lstm LSTM] [--skip SECTION ...]

The H200 runs of BENCHMARKS.md: run 1 with the defaults; run 2 with
``XLA_FLAGS=--xla_gpu_enable_triton_gemm=false`` and ``--skip peaks auto_chunk --crnn
paper:1:1:float32 paper:1:4:float32 paper:1:1:float32:eval paper:1:1:bfloat16``.

The crnn, crnn_more, lstm and auto_chunk sections are in benchmarks/accelerator_crnn.py.
Sections, in this order; one that would start after ``--budget`` seconds is skipped (and listed
as such), a failing one is recorded and the next runs; the JSON is rewritten after each one
(but the script stops at once if soundfile, zarr or opensmile does not import, unless the
sections that need them are skipped):
  peaks        n^3 matrix products, n = --peak-size (8192), in bf16 and in f32 at default and
               at highest precision, ten chained in one program: the chip's measured rates.
  lstm         the paper's three LSTMs alone (benchmarks/lstm_scan.py in a child process: 512
               steps, batch 8, forward + backward) run by flax's nn.RNN and by each
               ``MER_JAX_LSTM``: scan, wavefront, cudnn (mer_jax.lstm); if cudnn fails there,
               the crnn sections leave out their cudnn entries.
  crnn         ``--crnn`` entries (default, CRNN_FIRST: the paper CRNN, 5,966,116 parameters, at
               K = 1 with each way of running the LSTMs (``:scan``, the default, ``:cudnn``,
               ``:wavefront``, MER_JAX_LSTM); at K = 10 vmapped with the convolutions looped
               (``:loop``, MER_JAX_VMAP_CONV=loop); "sep" (4 channels) and the evaluation forward
               at K = 1 with each LSTM, at batch 8 and 40 (``:b40``, TrainConfig.eval_batch_size;
               160 with scan: PMEmo's 159 test songs in one call)), batch 8 unless ``:bN``,
               one Adam step (or evaluation call) of K models vmapped in one program
               (``MultiModel``, chunk = K): compile seconds, seconds per step and per
               model-step, speed-up per model over K = 1, FLOP/s (the analytic count of
               benchmarks/crnn_step.py for the paper's topology, else XLA's cost analysis, which
               misses cuDNN's convolutions) against the measured peak, device memory (the
               compiled program's analysis; the device's running peak).
  separation   real 45 s clips (``--audio``: audio files, replicated to fill a batch): the
               spleeter4 separator (U-Net and HPSS split, one program) batched over 1 and 8 songs
               on the device, the split alone on the host CPU, the spectrograms on the device and
               openSMILE on one CPU core, seconds per song each.
  preprocess   the whole preprocessing (spleeter4, 45 s clips) of ``--songs`` songs made of the
               ``--audio`` files (copies under new ids, quadrant layout): separator and spectrograms
               in this process, ``--workers`` CPU processes around it; songs per minute.
  train        ``python -m mer_jax.train`` (small config, 2 iterations x 3 seeds, 1 epoch) on the
               store the preprocess section wrote, with ``MER_JAX_LSTM=--train-lstm`` (default:
               cudnn on a GPU, else scan): the real command runs on this device.
  forests      the paper's Random Forest (100 trees, all features) on a training split of 635
               songs: one "mixed" (6,373 features) and one "sep" (25,492) fit, random features
               (measured on the H200 already, hence after train).
  crnn_more    ``--crnn-more`` entries (default: K = 10 looped with the wavefront LSTMs; K = 10
               with XLA's grouped convolutions; bfloat16 at K = 1; looped: sep at K = 10, K = 4
               and K = 20, last, as compiling 20 vmapped CRNNs once crashed XLA's autotuner and
               left the device unusable for what came after).
  auto_chunk   the ``models_in_parallel`` that "auto" picks for ``--auto-chunk-k`` models.
Then a projection of the full paper experiment on PMEmo (794 songs; 10 iterations; per input 10
CRNNs x 77 steps x 4 epochs with a validation pass every 7 steps; one forest per iteration and
input, fitted alongside the CRNNs as pipelines.experiment does on an accelerator, and one after
the other) from the measured figures, for each way of running the LSTMs measured on both inputs
(the fastest one as the headline), evaluating at the batch measured fastest per song
(``eval_batch_size``). Writes OUT/accelerator.json; prints a short table last.
``--weights-fp16``: the Spleeter weights as a float16 .npz (what fits a transfer limit), widened
to float32 into the cache first (their rounding does not change the timings).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from accelerator_crnn import (CRNN_FIRST, CRNN_MORE, auto_chunk, crnn, crnn_plan,  # noqa: E402
                              lstm_section, runnable, timed)
from accelerator_report import PAPER_SONGS, PAPER_TEST, projection, table  # noqa: E402
from mer_jax import lstm  # noqa: E402
from mer_jax.kernels import conv  # noqa: E402
from mer_jax.runtime import malloc_status, run_command  # noqa: E402
from mer_jax.training.config import load_config  # noqa: E402


def peaks(n: int = 8192, chain: int = 10) -> dict:
    """Measured matrix-product rates (FLOP/s) of ``chain`` chained n x n x n products."""
    out = {}
    for name, dtype, precision in (("bf16", jnp.bfloat16, None), ("f32", jnp.float32, None),
                                   ("f32_highest", jnp.float32, "highest")):
        a = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
        b = (jax.random.normal(jax.random.PRNGKey(2), (n, n)) / np.sqrt(n)).astype(dtype)

        @jax.jit
        def run(a, b):
            return jax.lax.fori_loop(0, chain, lambda i, c: jnp.matmul(c, b, precision=precision),
                                     a)
        _, seconds = timed(lambda: run(a, b), 3)
        out[name] = 2 * n ** 3 * chain / seconds
    return out


def load_clips(audio: list[Path], n: int, seconds: float) -> list[np.ndarray]:
    from mer_jax import audio as audio_io
    clips = [audio_io.load_clip(p, seconds=seconds, mono=False).samples for p in audio]
    return [clips[i % len(clips)] for i in range(n)]


def separation(audio: list[Path], cache_dir: Path, seconds: float, repeats: int) -> dict:
    """Seconds per song of each preprocessing stage: the separator (U-Net and HPSS split, one
    program) batched on the device, the split alone on this host's CPU (a worker's cost without
    the device), the spectrograms on the device, openSMILE on one CPU core."""
    from mer_jax.features import opensmile_features
    from mer_jax.features.spectrogram import spectrogram
    from mer_jax.preprocess import PreprocessConfig
    from mer_jax.separation import Spleeter4Separator
    from mer_jax.separation.accompaniment import split_accompaniment
    clips = load_clips(audio, 8, seconds)
    separator = Spleeter4Separator(cache_dir)
    out = {"clip_seconds": seconds}
    for batch in (1, 8):
        first, per_call = timed(lambda: separator.separate_many(clips[:batch], batch), repeats)
        out[f"separator_batch{batch}_first_call_s"] = first
        out[f"separator_batch{batch}_s_per_song"] = per_call / batch
    stems = separator.separate_many(clips[:1], 1)[0]
    accompaniment = separator.two_stems(clips[0])["accompaniment"]
    with jax.default_device(jax.devices("cpu")[0]):
        _, out["hpss_split_cpu_s_per_song"] = timed(
            lambda: split_accompaniment(accompaniment), repeats)
    pre = PreprocessConfig.for_clip("spleeter4", seconds)
    waves = jnp.asarray(np.concatenate([clips[0].mean(axis=0)[None], stems]))
    _, out["spectrograms_s_per_song"] = timed(
        lambda: spectrogram(waves, pre.spectrogram, pre.sample_rate), repeats)
    start = time.perf_counter()
    for signal in np.asarray(waves):
        opensmile_features.functionals(signal, 44_100)
    out["opensmile_s_per_song"] = time.perf_counter() - start
    return out


def replicated_dataset(audio: list[Path], root: Path, songs: int) -> Path:
    """``songs`` copies of the audio files under new ids, in the quadrant layout."""
    lines = ["Song,Quadrant"]
    for i in range(songs):
        quadrant = f"Q{i % 4 + 1}"
        source = audio[i % len(audio)]
        (root / quadrant).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / quadrant / f"S{i:04d}{source.suffix}")
        lines.append(f"S{i:04d},{quadrant}")
    (root / "annotations.csv").write_text("\n".join(lines) + "\n")
    return root


def preprocess_rate(audio: list[Path], work: Path, cache_dir: Path, songs: int, workers: int,
                    seconds: float) -> dict:
    from mer_jax.preprocess import PreprocessConfig, preprocess, separator_batch
    from mer_jax.store import FeatureStore
    data_dir = replicated_dataset(audio, work / "songs", songs)
    config = PreprocessConfig.for_clip("spleeter4", seconds)
    start = time.perf_counter()
    path = preprocess(data_dir, config, cache_dir, workers=workers, progress=False)
    elapsed = time.perf_counter() - start
    store = FeatureStore(path)
    return {"songs": songs, "done": len(store.done), "failed": len(store.failures()),
            "workers": workers, "separator_batch": separator_batch("spleeter4", None),
            "clip_seconds": seconds, "seconds": elapsed, "songs_per_min": 60 * songs / elapsed,
            "store": str(path)}


def forests(train_songs: int = PAPER_SONGS - PAPER_TEST) -> dict:
    from mer_jax.features.opensmile_features import N_FEATURES
    from mer_jax.forest import ForestConfig, make_forest
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, (train_songs, 4))
    out = {"train_songs": train_songs, "cores": os.cpu_count()}
    for name, width in (("mixed", N_FEATURES), ("sep", 4 * N_FEATURES)):
        x = rng.normal(size=(train_songs, width)).astype(np.float32)
        start = time.perf_counter()
        make_forest(ForestConfig(), 0).fit(x, y)
        out[f"{name}_fit_s"] = time.perf_counter() - start
    return out


def train_command(store: str, work: Path, lstms: str) -> dict:
    """The real training command on this device (small config, short), its LSTMs run as
    ``lstms`` says (``MER_JAX_LSTM``)."""
    command = [sys.executable, "-m", "mer_jax.train", "--mode", "mixed", "--config", "small",
               "--store", store, "--workdir", str(work / "train"), "--iterations", "2",
               "--set", "epochs=1"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=150,
                          env={**os.environ, lstm.VARIABLE: lstms})
    run = {}
    if (work / "train" / "run_mixed.json").is_file():
        run = json.loads((work / "train" / "run_mixed.json").read_text())
    return {"returncode": done.returncode, "seconds": time.perf_counter() - start,
            "last_line": (done.stdout.strip().splitlines() or [""])[-1],
            "stderr_tail": done.stderr[-600:] if done.returncode else "",
            **{k: run.get(k) for k in ("backend", "convolutions", "lstm", "models_in_parallel",
                                       "models_computed", "devices", "step_seconds",
                                       "train_step_compilations")}}


class Log:
    """Budget, skipped sections and the JSON written after each section."""

    def __init__(self, out: Path, budget: float):
        self.out, self.budget, self.start = out, budget, time.perf_counter()
        self.result = {"skipped": [], "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over_budget(self, section: str) -> bool:
        if self.elapsed() > self.budget:
            self.result["skipped"].append(section)
            self.write()
            return True
        return False

    def note(self, key: str, value) -> None:
        if key == "crnn":
            self.result.setdefault("crnn", []).append(value)
        else:
            self.result[key] = value
        self.result["elapsed_s"] = self.elapsed()
        self.write()
        print(f"[{self.elapsed():6.1f} s] {key}: {json.dumps(value, default=str)[:300]}",
              flush=True)

    def error(self, section: str, err: Exception) -> None:
        import traceback
        traceback.print_exc()
        self.result.setdefault("errors", []).append(f"{section}: {type(err).__name__}: {err}")
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "accelerator.json").write_text(json.dumps(self.result, indent=1,
                                                              default=str))


def widen_weights(fp16: Path, cache_dir: Path) -> None:
    """The float16 .npz of the Spleeter weights -> the float32 cache file the separator reads."""
    from mer_jax.separation.spleeter_weights import weights_file
    target = weights_file(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with np.load(fp16) as data:
        np.savez(target, **{k: data[k].astype(np.float32) for k in data.files})


def section(log: Log, name: str, fn) -> object:
    """Run one section unless over budget; a failure is recorded, never fatal."""
    if log.over_budget(name):
        return None
    try:
        value = fn()
    except Exception as err:  # noqa: BLE001 - a benchmark section's failure is a result too
        log.error(name, err)
        return None
    if value is not None:
        log.note(name, value)
    return value


def preflight(skip: list[str]) -> None:
    """Stop at once, naming the module and why, if the separation, preprocess or train section
    would fail to import what the device's image lacks (``benchmarks/device_carry.sh`` carries
    it): a rerun costs less then than after the CRNN sections."""
    if {"separation", "preprocess"} <= set(skip):     # train runs on preprocess's store only
        return
    for name in ("soundfile", "zarr", "opensmile"):
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - any failure to import is the same answer
            sys.exit(f"error: {name} does not import ({type(err).__name__}: {err}); the "
                     "separation, preprocess and train sections need it: carry it "
                     "(benchmarks/device_carry.sh) or --skip them")


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, required=True, help="folder of audio files")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "cache/accel")))
    parser.add_argument("--budget", type=float, default=420.0,
                        help="no section starts after this many seconds")
    parser.add_argument("--config", default="paper")
    parser.add_argument("--crnn", nargs="*", default=CRNN_FIRST,
                        metavar="CONFIG:K:C:DTYPE[:eval][:bN][:loop][:LSTM]")
    parser.add_argument("--crnn-more", nargs="*", default=CRNN_MORE,
                        metavar="CONFIG:K:C:DTYPE[:eval][:bN][:loop][:LSTM]")
    parser.add_argument("--train-lstm", choices=lstm.IMPLEMENTATIONS, default=None,
                        help="MER_JAX_LSTM of the train section (cudnn on a GPU, else scan)")
    parser.add_argument("--auto-chunk-k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--songs", type=int, default=80)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--clip-seconds", type=float, default=45.0)
    parser.add_argument("--weights-fp16", type=Path, default=None)
    parser.add_argument("--peak-size", type=int, default=8192, help="matrix size of the peaks")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    preflight(args.skip)
    log = Log(args.out, args.budget)
    device = jax.local_devices()[0]
    log.note("device", {"kind": device.device_kind, "backend": jax.default_backend(),
                        "devices": jax.device_count(), "jax": jax.__version__,
                        "convolutions": conv.status(), "lstm": lstm.status(),
                        "cpus": os.cpu_count(),
                        "machine": platform.machine(), "config": args.config,
                        "xla_flags": os.environ.get("XLA_FLAGS", ""),
                        "malloc": malloc_status()})
    config = load_config(args.config)
    audio = sorted(p for p in args.audio.iterdir() if p.suffix.lower() in (".mp3", ".wav",
                                                                           ".flac"))
    work = Path(tempfile.mkdtemp(prefix="mer-accel-"))
    cache_dir = work / "cache"
    if args.weights_fp16:
        widen_weights(args.weights_fp16, cache_dir)
    else:
        cache_dir = REPO / "cache"
    plans = crnn_plan(args.crnn), crnn_plan(args.crnn_more)
    train_lstm = args.train_lstm or ("cudnn" if jax.default_backend() == "gpu" else "scan")
    run = {
        "peaks": lambda: peaks(args.peak_size),
        "lstm": lambda: lstm_section(args.repeats),
        "crnn": lambda: crnn(runnable(plans[0], log), args.repeats, log),
        "separation": lambda: separation(audio, cache_dir, args.clip_seconds, 3),
        "preprocess": lambda: preprocess_rate(audio, work, cache_dir, args.songs, args.workers,
                                              args.clip_seconds),
        "train": lambda: train_command(log.result["preprocess"]["store"], work, train_lstm),
        "forests": forests,
        "crnn_more": lambda: crnn(runnable(plans[1], log), args.repeats, log),
        "auto_chunk": lambda: auto_chunk(config, args.auto_chunk_k),
    }
    for name, fn in run.items():
        if name not in args.skip and (name != "train" or "preprocess" in log.result):
            section(log, name, fn)
    log.note("projection", projection(log.result.get("crnn", []), log.result.get("forests"),
                                      log.result.get("preprocess")))
    print(table(log.result))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))    # as our commands run: glibc's huge-page malloc (children too)
