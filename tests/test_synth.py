import csv
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mer_jax.data import read_pmemo
from mer_jax.data.synth import STEMS, SynthConfig, render_song, write_dataset
from mer_jax.data.synth.generate import pool_for


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".wav", ".csv"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    write_dataset(out, SynthConfig(n=6, seconds=3.0, seed=11), workers=2, progress=False)
    return out


def test_same_seed_is_bit_identical_whatever_the_workers(small_dataset, tmp_path):
    again = tmp_path / "b"
    write_dataset(again, SynthConfig(n=6, seconds=3.0, seed=11), workers=1, progress=False)
    first, second = _digest(small_dataset), _digest(again)
    assert len(first) == 6 * 5 + 4 and first == second


def test_another_seed_gives_another_dataset(small_dataset, tmp_path):
    other = tmp_path / "c"
    write_dataset(other, SynthConfig(n=6, seconds=3.0, seed=12), workers=1, progress=False)
    a, b = _digest(small_dataset), _digest(other)
    assert all(a[k] != b[k] for k in a if k.endswith(".wav"))


def test_layout_is_read_by_the_pmemo_reader(small_dataset):
    dataset = read_pmemo(small_dataset)
    assert [s.song_id for s in dataset] == ["1", "2", "3", "4", "5", "6"] and not dataset.skipped
    labels = np.stack([s.labels for s in dataset])
    assert np.all((labels >= 0) & (labels <= 1)) and np.all(labels[:, 2:] > 0)
    for song in dataset:
        mix, rate = sf.read(song.audio_path, dtype="float32")
        assert rate == 44_100 and mix.shape == (3 * 44_100,)
        stems = [sf.read(small_dataset / "stems" / song.song_id / f"{n}.wav", dtype="float32")[0]
                 for n in STEMS]
        np.testing.assert_allclose(mix, np.sum(stems, axis=0), atol=1e-6)
        assert np.abs(mix).max() < 1.0 and all(np.abs(s).max() < 1.0 for s in stems)
        assert all(np.sqrt(np.mean(s ** 2)) > 1e-3 for s in stems)  # every stem is audible
    with open(small_dataset / "synth_songs.csv") as f:
        known = list(csv.DictReader(f))
    assert len(known) == 6 and "latent_valence" in known[0] and "cue_vocal_brightness" in known[0]


def test_render_song_in_memory_matches_its_labels():
    config = SynthConfig(n=3, seconds=2.0, seed=4)
    song = render_song(config, 2, pool_for(config))
    assert song.song_id == "3" and song.stems.shape == (4, 88_200) and song.stems.dtype == np.int16
    np.testing.assert_array_equal(song.mix, song.stems.astype(np.int32).sum(axis=0))
    assert np.all(song.label_std > 0) and np.all((song.label_mean >= 0) & (song.label_mean <= 1))


def test_folder_of_another_config_is_refused(small_dataset):
    with pytest.raises(FileExistsError, match="another config"):
        write_dataset(small_dataset, SynthConfig(n=6, seconds=3.0, seed=99), progress=False)


def test_cli_prints_the_dataset_path_last(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "mer_jax.data.synth", "--out", str(out), "--n", "2",
                             "--seconds", "1.5", "--seed", "3", "--workers", "1"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert "synthesizing songs" in result.stderr  # the progress bar
    assert len(read_pmemo(out)) == 2


# --- learnability: cheap spectral features + ridge beat the training mean on held-out songs ---
MAJOR_TRIAD, MINOR_TRIAD = np.zeros(12), np.zeros(12)
MAJOR_TRIAD[[0, 4, 7]] = 1
MINOR_TRIAD[[0, 3, 7]] = 1


def _frames(x, size, hop):
    n = (x.size - size) // hop
    idx = np.arange(size)[None] + hop * np.arange(n)[:, None]
    return np.abs(np.fft.rfft(x[idx] * np.hanning(size), axis=1)) ** 2, np.fft.rfftfreq(size, 1 / 44_100)


def cheap_features(x):
    """Level, spectral centroid, band energies, onset flux and its periodicity, chord quality."""
    power, freqs = _frames(x, 2048, 1024)
    centroid = (power * freqs).sum(1) / (power.sum(1) + 1e-12)
    flux = np.maximum(np.diff(np.sqrt(power), axis=0), 0).sum(1)
    bands = [np.log(power[:, (freqs >= a) & (freqs < b)].sum(1).mean() + 1e-12)
             for a, b in ((0, 200), (200, 800), (800, 3000), (3000, 8000), (8000, 22050))]
    centred = flux - flux.mean()
    acf = np.correlate(centred, centred, "full")[centred.size - 1:]
    acf = acf[1:40:2] / (acf[0] + 1e-12)
    chroma_power, f8 = _frames(x, 8192, 2048)
    keep = (f8 > 80) & (f8 < 2000)
    pitch_class = (np.round(12 * np.log2(f8[keep] / 440)) + 9) % 12
    chroma = np.stack([chroma_power[:, keep][:, pitch_class == k].sum(1) for k in range(12)], 1)
    chroma /= chroma.sum(1, keepdims=True) + 1e-12
    major = np.max([chroma @ np.roll(MAJOR_TRIAD, k) for k in range(12)], axis=0)
    minor = np.max([chroma @ np.roll(MINOR_TRIAD, k) for k in range(12)], axis=0)
    return np.array([10 * np.log10(np.mean(x ** 2)), centroid.mean() / 1000,
                     np.log(flux.mean() + 1e-9), flux.std() / (flux.mean() + 1e-9), *bands, *acf,
                     np.mean(major - minor), np.mean(major > minor)])


@pytest.mark.slow
def test_labels_are_learnable_from_the_audio(tmp_path):
    out = tmp_path / "learn"
    write_dataset(out, SynthConfig(n=120, seconds=8.0, seed=2024), workers=2, progress=False)
    dataset = read_pmemo(out)
    features = np.stack([cheap_features(sf.read(s.audio_path, dtype="float64")[0]) for s in dataset])
    labels = np.stack([s.labels for s in dataset])
    train, test = np.arange(90), np.arange(90, 120)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 21)))
    prediction = model.fit(features[train], labels[train]).predict(features[test])
    for k, name in ((0, "valence"), (1, "arousal")):
        ridge = np.sqrt(np.mean((prediction[:, k] - labels[test, k]) ** 2))
        baseline = np.sqrt(np.mean((labels[train, k].mean() - labels[test, k]) ** 2))
        assert ridge < 0.9 * baseline, (name, ridge, baseline)


def test_complete_folder_is_reused_and_interrupted_one_regenerated(small_dataset, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.wav")}
    write_dataset(small_dataset, SynthConfig(n=6, seconds=3.0, seed=11), progress=False)
    assert {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.wav")} == before
    broken = tmp_path / "broken"
    write_dataset(broken, SynthConfig(n=6, seconds=3.0, seed=11), workers=1, progress=False)
    (broken / ".complete").unlink()          # as if killed before the end
    (broken / "chorus" / "4.wav").unlink()
    write_dataset(broken, SynthConfig(n=6, seconds=3.0, seed=11), workers=1, progress=False)
    assert _digest(broken) == _digest(small_dataset)
