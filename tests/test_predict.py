"""mer_jax.predict: a trained model applied to audio files, with the features made as in training."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import soundfile as sf

import mer_jax
from conftest import TINY_OVERRIDES
from mer_jax import audio, inference
from mer_jax.predict import CSV_HEADER, main
from mer_jax.predictions import read_iterations
from mer_jax.store import FeatureStore
from mer_jax.training.config import apply_overrides, load_config
from mer_jax.training.loop import train_and_evaluate


@pytest.fixture(scope="module")
def trained(tiny_store, tmp_path_factory):
    """A training workdir with both modes, trained on the tiny store (3 s clips, oracle stems)."""
    config = apply_overrides(load_config("configs/small.py"), TINY_OVERRIDES + ["iterations=1"])
    workdir = tmp_path_factory.mktemp("predict") / "work"
    for mode in ("mixed", "sep"):
        train_and_evaluate(config, tiny_store, workdir, mode, progress=False)
    return workdir


@pytest.fixture(scope="module")
def songs(tiny_store):
    root = FeatureStore(tiny_store).attrs["dataset"]["root"]
    return sorted((p for p in (Path(root) / "chorus").glob("*.wav")),
                  key=lambda p: int(p.stem))


def _training_predictions(workdir, mode):
    table = read_iterations([workdir / "predictions" / f"{mode}_iteration_1.csv"])[0]
    return dict(zip(table.song_ids, table.predictions[mode]))


@pytest.mark.parametrize("mode", ["mixed", "sep"])
def test_same_features_as_training(trained, songs, mode):
    """A clip as long as the training clips gives the prediction training wrote for it."""
    expected = _training_predictions(trained, mode)
    predictor = inference.Predictor(inference.load_model(trained, mode), separator="oracle")
    for song_id, values in list(expected.items())[:3]:
        result = predictor(songs[int(song_id) - 1])
        assert result.windows.shape == (1, 4)
        np.testing.assert_allclose(result.values, values, atol=2e-5)


def test_same_features_for_a_pooled_crop_trained_model(tiny_store, songs, tmp_path):
    """configs/small_real.py's input options (block-averaged time, mean/max summary, random
    crops in training): serving makes the inputs training made and applies the whole input."""
    config = apply_overrides(load_config("configs/small.py"), TINY_OVERRIDES + [
        "iterations=1", "time_pool=mean", "model.summary=pool", "time_bins=256",
        "crop_bins=128"])
    train_and_evaluate(config, tiny_store, tmp_path, "mixed", progress=False)
    expected = _training_predictions(tmp_path, "mixed")
    predictor = inference.Predictor(inference.load_model(tmp_path, "mixed"))
    for song_id, values in list(expected.items())[:2]:
        np.testing.assert_allclose(predictor(songs[int(song_id) - 1]).values, values, atol=2e-5)


def test_long_song_windows_and_aggregate(trained, songs, tmp_path):
    """An 8 s stereo 22.05 kHz file: 3 s windows every 1.5 s, the last one ending at the end."""
    mono, rate = sf.read(songs[0], dtype="float32")
    long = np.concatenate([mono, mono * 0.5, mono[: len(mono) * 2 // 3]])
    stereo = np.stack([long, 0.8 * long], axis=1)
    path = tmp_path / "long.wav"
    sf.write(path, stereo[::2], rate // 2)
    predictor = inference.Predictor(inference.load_model(trained, "mixed"))
    result = predictor(path)
    assert np.allclose(result.spans[:, 0], [0, 1.5, 3, 4.5, 5])
    assert np.allclose(result.spans[:, 1] - result.spans[:, 0], 3.0)
    np.testing.assert_allclose(result.values, inference.aggregate(result.windows))
    # law of total variance: the mixture is at least as wide as its average window
    assert np.all(result.values[2:] >= np.sqrt(np.mean(result.windows[:, 2:] ** 2, axis=0)) - 1e-12)
    assert np.all(result.values[2:] > 0)


def test_window_starts_and_aggregate_by_hand():
    assert inference.window_starts(5, 10, 4) == [0]
    assert inference.window_starts(10, 10, 4) == [0]
    assert inference.window_starts(21, 10, 5) == [0, 5, 10, 11]
    windows = np.array([[0.2, 0.4, 0.1, 0.2], [0.6, 0.4, 0.1, 0.2]])
    np.testing.assert_allclose(inference.aggregate(windows),
                               [0.4, 0.4, np.sqrt(0.01 + 0.04), 0.2])


def test_stds_are_floored_and_counted(trained, songs):
    predictor = inference.Predictor(inference.load_model(trained, "mixed"), min_std=5.0)
    result = predictor(songs[0])
    assert result.clamped == 2 and np.all(result.windows[:, 2:] == 5.0)


def test_checkpoint_kinds(trained, songs, tmp_path):
    """Model folder, workdir, and a workdir with only Orbax checkpoints give the same model."""
    folder = inference.load_model(trained / "models" / "sep_iteration_1")
    assert folder.mode == "sep" and folder.preprocess.clip_seconds == 3.0
    assert inference.load_model(trained).mode == "mixed"
    only_checkpoints = tmp_path / "work"
    shutil.copytree(trained, only_checkpoints, ignore=shutil.ignore_patterns("models"))
    restored = inference.load_model(only_checkpoints, "sep")
    assert "checkpoints" in restored.source and "@" in restored.source
    for a, b in zip(*(map(np.asarray, jax.tree_util.tree_leaves(m.params))
                      for m in (folder, restored))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(inference.ModelLoadError, match="is a 'sep' model, not 'mixed'"):
        inference.load_model(trained / "models" / "sep_iteration_1", "mixed")
    with pytest.raises(inference.ModelLoadError, match="neither a model folder"):
        inference.load_model(tmp_path)


def test_python_api(trained, songs):
    result = mer_jax.predict_file(songs[1], trained)
    assert result.values.shape == (4,) and result.as_dict()["path"] == str(songs[1])


def test_cli_walks_folders_skips_bad_files_and_resumes(trained, songs, tmp_path, capsys):
    music = tmp_path / "music"
    (music / "album").mkdir(parents=True)
    for song in songs[:3]:
        shutil.copy(song, music / "album" / song.name)
    (music / "notes.txt").write_text("not audio")             # not an audio suffix: not listed
    (music / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")     # unreadable: reported, skipped
    out = tmp_path / "out" / "predictions.csv"
    args = [str(music), "--checkpoint", str(trained), "--out", str(out), "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "failed: " in err and "broken.wav" in err
    assert err.strip().splitlines()[-1].startswith("predicted 3 files (0 already done, 1 failed)")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_HEADER == ["path", "valence_mean", "arousal_mean",
                                           "valence_std", "arousal_std"]
    assert len(rows) == 3 and all(float(r["valence_std"]) > 0 for r in rows)
    windows = list(csv.DictReader(open(out.with_suffix(".windows.csv"))))
    assert {w["path"] for w in windows} == {r["path"] for r in rows}

    # a kill mid-write leaves half a row: dropped on rerun and that file redone; others skipped
    text = out.read_text().splitlines()
    out.write_text("\n".join(text[:-1] + [text[-1][:12]]) + "\n")
    assert main(args) == 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("predicted 1 files (2 already done, 1 failed)")
    with open(out, newline="") as f:
        assert sorted(r["path"] for r in csv.DictReader(f)) == sorted(r["path"] for r in rows)
    # cut inside its last number (power loss, full disk): complete-looking but no newline
    text = out.read_text()
    out.write_text(text[:-3])
    assert main(args) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "predicted 1 files (2 already done, 1 failed)")
    assert out.read_text().count("\n") == 4 and out.read_text().endswith("\n")
    # a rerun where only the bad file is left: it fails again, but the others are done: exit 0
    assert main(args) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "predicted 0 files (3 already done, 1 failed)")

    # another model into the same output is refused
    assert main(args + ["--mode", "sep"]) == 2
    assert "another model" in capsys.readouterr().err


def test_a_model_retrained_in_the_same_folder_never_resumes_old_predictions(trained, songs,
                                                                            tmp_path, capsys):
    folder = tmp_path / "release"
    shutil.copytree(trained / "models" / "mixed_iteration_1", folder)
    args = [str(songs[0]), "--checkpoint", str(folder), "--out", str(tmp_path / "p.csv"),
            "--quiet"]
    assert main(args) == 0 and main(args) == 0
    assert "(1 already done" in capsys.readouterr().err.strip().splitlines()[-1]
    # retrained: other weights, the same folder, config and model.json
    params = inference.load_model(folder).params
    shutil.rmtree(folder / "params")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(folder.resolve() / "params",
                          jax.tree_util.tree_map(lambda p: p * 1.01, params))
    assert main(args) == 2
    assert "another model" in capsys.readouterr().err


def test_cli_json_and_all_failed_exit_code(trained, songs, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main([str(songs[0]), "--checkpoint", str(trained / "models" / "sep_iteration_1"),
                 "--out", str(out), "--quiet", "--separator", "oracle"]) == 0
    saved = json.loads(out.read_text())
    assert saved["model"]["mode"] == "sep" and saved["model"]["separator"] == "oracle"
    (row,) = saved["predictions"]
    assert set(CSV_HEADER) <= set(row) and len(row["windows"]) == 1
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\0" * 100)
    assert main([str(bad), "--checkpoint", str(trained), "--quiet"]) == 1
    assert main([str(tmp_path / "missing.wav"), "--checkpoint", str(trained), "--quiet"]) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--checkpoint", str(trained)]) == 2


def test_cli_names_unreadable_files_and_warns_on_silence(trained, songs, tmp_path, capsys):
    locked = tmp_path / "locked.wav"
    shutil.copy(songs[0], locked)
    locked.chmod(0)
    silent = tmp_path / "silent.wav"
    audio.write_wav(silent, np.zeros(3 * 44_100, np.float32))
    try:
        assert main([str(locked), str(silent), "--checkpoint", str(trained), "--quiet"]) == 0
    finally:
        locked.chmod(0o644)
    err = capsys.readouterr().err
    if os.geteuid() != 0:       # root reads any file
        assert f"failed: {locked}: permission denied" in err
    assert f"warning: {silent}: silent audio" in err
    assert inference.Predictor(inference.load_model(trained))(silent).silent


def test_cli_as_a_module(trained, songs):
    result = subprocess.run([sys.executable, "-m", "mer_jax.predict", str(songs[2]),
                             "--checkpoint", str(trained), "--quiet"],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ",".join(CSV_HEADER) and lines[1].startswith(str(songs[2]))
    assert result.stderr.strip().splitlines()[-1].startswith("predicted 1 files")


def test_serving_imports_no_training_or_preprocessing_code():
    """predict/inference stand on neutral modules (features.config, features.model_input,
    model.predict, files): no trainer, loader, optimizer, preprocessing driver or evaluation."""
    code = ("import sys, mer_jax.predict; print(sorted(m for m in sys.modules if m.startswith(("
            "'mer_jax.training.data', 'mer_jax.training.steps', 'mer_jax.training.loop', "
            "'mer_jax.preprocess', 'mer_jax.evaluate', 'mer_jax.report', 'optax'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
