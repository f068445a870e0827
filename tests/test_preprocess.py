import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import zarr

KILL_AFTER = Path(__file__).with_name("kill_after.py")

from mer_jax import audio
from mer_jax.data.synth import SynthConfig, write_dataset
from mer_jax.features.spectrogram import PAPER_FRAMES, SpectrogramConfig, spectrogram
from mer_jax.preprocess import PreprocessConfig, preprocess, shard_songs
from mer_jax.store import DONE, FAILED, MADE_BY, FeatureStore, StoreError, StoreLock
from pipelines import preprocess as preprocess_cli

CLIP = 2.0
ARRAYS = ["mixed/spectrogram", "sep/spectrogram", "sep/stems", "mixed/opensmile", "sep/opensmile"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "synth"
    write_dataset(out, SynthConfig(n=4, seconds=CLIP, seed=5), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def oracle_store(synth, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return preprocess(synth, PreprocessConfig.for_clip("oracle", CLIP), cache, progress=False)


def test_numpy_reference_spectrogram_of_a_real_45s_clip(pmemo_mini):
    clip = audio.load_clip(pmemo_mini / "chorus" / "634.mp3")
    assert SpectrogramConfig.frames_for(clip.samples.size) == PAPER_FRAMES == 15_502
    ours = np.asarray(spectrogram(jnp.asarray(clip.samples[None])))[0]
    assert ours.shape == (129, 2048)
    frames = 1 + (clip.samples.size - 255) // 128
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(255) / 255)
    idx = np.arange(255)[None] + 128 * np.arange(frames)[:, None]
    magnitude = np.abs(np.fft.rfft(clip.samples[idx].astype(np.float64) * window, n=256, axis=1))
    pos = (np.arange(2048) + 0.5) * frames / 2048 - 0.5   # bilinear, half-pixel, no antialias
    lo = np.clip(np.floor(pos).astype(int), 0, frames - 1)
    frac = pos - np.floor(pos)
    expected = (magnitude[lo] * (1 - frac)[:, None]
                + magnitude[np.minimum(lo + 1, frames - 1)] * frac[:, None]).T
    np.testing.assert_allclose(ours, expected, atol=1e-5 * expected.max())  # float32 FFT


def test_store_contract(oracle_store, synth):
    store = FeatureStore(oracle_store)
    n, samples = 4, int(CLIP * 44_100)
    frames = SpectrogramConfig.frames_for(samples)
    assert store.ids == ["1", "2", "3", "4"] and list(store.done) == [0, 1, 2, 3]
    expected = {"mixed/spectrogram": (n, 129, 2048), "sep/spectrogram": (n, 4, 129, 2048),
                "sep/stems": (n, 4, samples), "mixed/opensmile": (n, 6373),
                "sep/opensmile": (n, 25_492)}
    for name, shape in expected.items():
        array = store.array(name)
        assert array.shape == shape and array.dtype == np.float32
        assert array.chunks == (1,) + shape[1:] and array.compressors  # one song per chunk
    assert store.labels.shape == (4, 4) and store.labels.dtype == np.float32
    attrs = store.attrs
    assert attrs["config_hash"] in oracle_store.name and attrs["config"]["separator"] == "oracle"
    assert attrs["config"]["spectrogram"]["n_frames"] == frames
    assert attrs["stems"] == ["vocals", "bass", "drums", "other"]
    assert len(attrs["opensmile_features"]) == 6373
    # the stored features are those of the true stems
    stems = store.array("sep/stems")[1]
    true_vocals, _ = audio.decode(synth / "stems" / "2" / "vocals.wav")
    np.testing.assert_array_equal(stems[0], true_vocals[0])
    mix = audio.load_clip(synth / "chorus" / "2.wav", seconds=CLIP).samples
    np.testing.assert_allclose(store.array("mixed/spectrogram")[1],
                               np.asarray(spectrogram(jnp.asarray(mix[None]), SpectrogramConfig(n_frames=frames)))[0],
                               rtol=1e-6)
    assert np.isfinite(store.array("sep/opensmile")[:]).all()


def test_changed_config_never_reuses_a_store(oracle_store, synth, tmp_path):
    from mer_jax.data import read_dataset
    from mer_jax.preprocess import store_path
    dataset = read_dataset(synth)
    same, _ = store_path(oracle_store.parent, synth, PreprocessConfig.for_clip("oracle", CLIP), dataset)
    other, _ = store_path(oracle_store.parent, synth, PreprocessConfig.for_clip("oracle", 1.5), dataset)
    assert same == oracle_store and other != oracle_store


def test_other_spectrograms_reuse_the_stems_of_a_sibling_store(oracle_store, synth, tmp_path,
                                                                capsys):
    """A mel store made beside an |STFT| store of the same songs and separator copies the songs'
    stems and openSMILE features (proved by a marker put in the donor's functionals) and computes
    its own spectrograms; a song the donor failed or made from other audio is separated again.
    Everything equals a mel store made from scratch, but the marker."""
    cache = tmp_path / "cache"
    donor_path = cache / oracle_store.name
    shutil.copytree(oracle_store, donor_path)
    donor = zarr.open_group(str(donor_path), mode="r+")
    marked = donor["sep/opensmile"][:]
    marked[:3] += 1000.0                        # songs 1, 2, 3
    donor["sep/opensmile"][:] = marked
    donor["status"][2] = FAILED                 # song 3: redone
    donor["sources"][1] = "0:other audio"       # song 2: redone
    mel = PreprocessConfig.for_clip("oracle", CLIP, "mel")
    reused = FeatureStore(preprocess(synth, mel, cache, progress=False))
    assert "reused the stems and openSMILE features of 2 songs" in capsys.readouterr().out
    scratch = FeatureStore(preprocess(synth, mel, tmp_path / "scratch", progress=False))
    assert list(reused.status) == [DONE] * 4
    assert reused.attrs["stems_hash"] == scratch.attrs["stems_hash"] == donor.attrs["stems_hash"]
    assert reused.attrs["config_hash"] != donor.attrs["config_hash"]
    expected = scratch.array("sep/opensmile")[:]
    expected[0] += 1000.0        # copied: songs 1 (marked) and 4; songs 2 and 3 made again
    np.testing.assert_array_equal(reused.array("sep/opensmile")[:], expected)
    for name in ARRAYS:
        if name != "sep/opensmile":
            np.testing.assert_allclose(reused.array(name)[:], scratch.array(name)[:],
                                       atol=1e-6, err_msg=name)


def test_inputs_keys_follow_what_made_each_array_and_each_songs_audio(oracle_store, synth,
                                                                       tmp_path):
    """``inputs_key`` keys training runs, forests and experiment stages. An array's key changes
    with the settings that made it (mel bands: the spectrograms' keys, not the stems' or the
    openSMILE features'), and with the audio of a song of the splits (which preprocessing
    redoes), not of a song outside them. A store made before a hash existed keys by a wider one."""
    cache = tmp_path / "cache"
    stft = FeatureStore(shutil.copytree(oracle_store, cache / oracle_store.name))
    mel = FeatureStore(preprocess(synth, PreprocessConfig.for_clip("oracle", CLIP, "mel"), cache,
                                  progress=False))
    every = [{"train": ["1", "2"], "test": ["3", "4"]}]
    without_1 = [{"train": ["2"], "test": ["3"]}]
    before = {(name, len(split[0]["train"])): stft.inputs_key(name, split)
              for name in MADE_BY for split in (every, without_1)}
    for name in MADE_BY:
        assert (before[name, 2] == mel.inputs_key(name, every)) == ("spectrogram" not in name)
    data = tmp_path / "data" / synth.name
    shutil.copytree(synth, data)
    shutil.copy(synth / "chorus" / "2.wav", data / "chorus" / "1.wav")   # song 1's audio changed
    redone = FeatureStore(preprocess(data, PreprocessConfig.for_clip("oracle", CLIP), cache,
                                     progress=False))
    assert redone.path == stft.path
    for name in MADE_BY:
        assert redone.inputs_key(name, every) != before[name, 2], name
        assert redone.inputs_key(name, without_1) == before[name, 1], name
    with pytest.raises(StoreError, match="not preprocessed there: 5"):
        redone.inputs_key("sep/stems", [{"train": ["4"], "test": ["5"]}])
    for store in (redone, mel):          # as if made before these two hashes: keyed by wider ones
        old = zarr.open_group(str(store.path), mode="r+")
        del old.attrs["mixed_opensmile_hash"], old.attrs["stems_hash"]
    redone, mel = FeatureStore(redone.path), FeatureStore(mel.path)
    for name in ("sep/stems", "mixed/opensmile", "sep/opensmile"):
        assert redone.inputs_key(name, without_1) != mel.inputs_key(name, without_1), name


def test_bad_song_is_recorded_and_retried(synth, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth, data)
    (data / "chorus" / "3.wav").write_bytes(b"RIFF....not really")
    cache = tmp_path / "cache"
    config = PreprocessConfig.for_clip("oracle", CLIP)
    path = preprocess(data, config, cache, progress=False)
    store = FeatureStore(path)
    assert list(store.status) == [DONE, DONE, FAILED, DONE]
    assert "3.wav: not a decodable audio file" in store.failures()["3"]
    before = store.array("mixed/opensmile")[:]
    shutil.copy(synth / "chorus" / "3.wav", data / "chorus" / "3.wav")  # the user fixes it
    shutil.copy(synth / "chorus" / "2.wav", data / "chorus" / "1.wav")  # and changes a done song
    assert preprocess(data, config, cache, progress=False) == path    # same store, resumed
    store = FeatureStore(path)
    assert list(store.status) == [DONE] * 4 and not store.failures()
    after = store.array("mixed/opensmile")[:]
    np.testing.assert_array_equal(after[0], after[1])   # song 1 was redone from its new audio
    np.testing.assert_array_equal(after[3], before[3])  # untouched songs kept


def test_a_songs_source_is_its_content_not_its_file_times(synth, tmp_path):
    """A remounted or copied data folder (new modification times, same bytes) reuses the store;
    one changed byte redoes the song."""
    from mer_jax.preprocess import source_fingerprint
    original = synth / "chorus" / "1.wav"
    copy = tmp_path / "1.wav"
    shutil.copy(original, copy)
    os.utime(copy, ns=(1, 1))
    assert copy.stat().st_mtime_ns != original.stat().st_mtime_ns
    assert source_fingerprint(copy) == source_fingerprint(original)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    assert source_fingerprint(copy) != source_fingerprint(original)


def test_second_writer_is_locked_out(oracle_store, synth):
    with StoreLock(oracle_store):
        with pytest.raises(StoreError, match="being written by another preprocess"):
            preprocess(synth, PreprocessConfig.for_clip("oracle", CLIP), oracle_store.parent,
                       progress=False)


def test_shards_are_disjoint_blocks_covering_every_song():
    for songs in (0, 1, 5, 794):
        for n in range(1, 8):
            blocks = [shard_songs(songs, (i, n)) for i in range(1, n + 1)]
            assert blocks[0][0] == 0 and blocks[-1][1] == songs
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            assert max(b - a for a, b in blocks) - min(b - a for a, b in blocks) <= 1
    with pytest.raises(ValueError, match="need 1 <= i <= n"):
        shard_songs(5, (3, 2))
    with pytest.raises(SystemExit):                                # a usage error
        preprocess_cli.main(["--data-dir", "x", "--shard", "0/2"])


def test_a_writer_locks_only_its_songs(oracle_store, synth):
    with StoreLock(oracle_store, 0, 2):
        with StoreLock(oracle_store, 2, 4):                       # disjoint shard: fine
            pass
        with pytest.raises(StoreError, match="song indices 1..2 are being written by another"):
            with StoreLock(oracle_store, 1, 3):
                pass
        with pytest.raises(StoreError, match="being written by another preprocess"):
            preprocess(synth, PreprocessConfig.for_clip("oracle", CLIP), oracle_store.parent,
                       progress=False)                             # all songs: overlaps
    with StoreLock(oracle_store):                                  # released
        pass


@pytest.mark.slow
def test_concurrent_shards_fill_the_same_store_as_one_process(oracle_store, synth, tmp_path):
    """The two tasks of a Slurm job array (pipelines/batch/preprocess_array.sbatch, run by bash
    with the variables Slurm sets) started together into a fresh cache: the store's creation
    race and the per-song locks allow it, and the store equals one process's."""
    cache = tmp_path / "cache"
    script = Path(__file__).parents[1] / "pipelines" / "batch" / "preprocess_array.sbatch"
    env = {**os.environ, "DATA_DIR": str(synth), "SEPARATOR": "oracle", "CACHE_DIR": str(cache),
           "CLIP_SECONDS": str(CLIP), "PYTHON": sys.executable, "SLURM_ARRAY_TASK_COUNT": "2"}
    shards = [subprocess.Popen(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in (1, 2)]
    outputs = [shard.communicate(timeout=600) for shard in shards]
    store_dir = (cache / oracle_store.name).resolve()
    for shard, (out, err) in zip(shards, outputs):
        assert shard.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == str(store_dir)
    assert "shard 1/2: songs 1-2 of 4, 2 done" in outputs[0][0]
    resumed, reference = FeatureStore(store_dir), FeatureStore(oracle_store)
    assert list(resumed.status) == [DONE] * 4
    for name in ARRAYS:
        np.testing.assert_array_equal(resumed.array(name)[:], reference.array(name)[:], err_msg=name)


@pytest.mark.slow
def test_kill_9_then_rerun_equals_an_uninterrupted_run(oracle_store, synth, tmp_path):
    cache = tmp_path / "cache"
    args = ["pipelines.preprocess", "--data-dir", str(synth), "--separator", "oracle",
            "--cache-dir", str(cache), "--clip-seconds", str(CLIP)]
    # kill -9 right after the second song is written (tests/kill_after.py: no race)
    killed = subprocess.run([sys.executable, str(KILL_AFTER), "mer_jax.store:write_song", "2",
                             *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    store_dir = cache / oracle_store.name
    partial = zarr.open_group(str(store_dir), mode="r")["status"][:]
    assert (partial == DONE).sum() == 2, partial  # killed in the middle
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == str(store_dir.resolve())
    resumed, reference = FeatureStore(store_dir), FeatureStore(oracle_store)
    assert list(resumed.status) == [DONE] * 4
    for name in ARRAYS:
        np.testing.assert_array_equal(resumed.array(name)[:], reference.array(name)[:], err_msg=name)


@pytest.mark.slow
def test_spleeter4_on_real_pmemo_songs(pmemo_mini, tmp_path, capsys):
    data = tmp_path / "pmemo"
    shutil.copytree(pmemo_mini, data)
    for song in ("372", "634", "683"):
        (data / "chorus" / f"{song}.mp3").unlink()
    code = preprocess_cli.main(["--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
                                "--clip-seconds", "6"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    store = FeatureStore(out[-1])
    assert store.ids == ["17", "108"] and list(store.status) == [DONE, DONE]
    assert set(store.attrs["skipped"]) == {"372", "634", "683"}
    for song in ("372", "634", "683"):     # each skipped id printed with its reason
        assert f"  skipped {song}: no audio file in chorus/" in out
    stems = store.array("sep/stems")[:]
    assert stems.shape == (2, 4, 6 * 44_100) and np.all(np.abs(stems).max(axis=-1) > 1e-3)
    mix = audio.load_clip(data / "chorus" / "17.mp3", seconds=6).samples
    residual = mix - stems[0].sum(axis=0)   # the four stems add up to the mix
    assert np.sqrt(np.mean(residual ** 2)) < 0.1 * np.sqrt(np.mean(mix ** 2))


def test_batched_separation_in_the_parent_gives_the_same_store(pmemo_mini, tmp_path):
    """The accelerator path (separator and spectrograms batched in the parent, workers decode
    and compute openSMILE), forced on CPU: 3 good songs in batches of 2 (the last one padded) and one undecodable file, which fails
    alone. Same store as the one-process path, to float tolerance."""
    data = tmp_path / "pmemo"
    shutil.copytree(pmemo_mini, data)
    (data / "chorus" / "683.mp3").unlink()
    (data / "chorus" / "634.mp3").write_bytes(b"not audio at all" * 100)
    config = PreprocessConfig.for_clip("spleeter4", 3.0)
    plain = FeatureStore(preprocess(data, config, tmp_path / "a", progress=False, batch=0))
    batched = FeatureStore(preprocess(data, config, tmp_path / "b", workers=2, progress=False,
                                      batch=2))
    assert plain.ids == batched.ids == ["17", "108", "372", "634"]
    assert list(batched.status) == list(plain.status) == [DONE, DONE, DONE, FAILED]
    assert "634" in batched.failures()["634"]
    for name in ARRAYS:
        a, b = plain.array(name)[:3], batched.array(name)[:3]
        scale = np.abs(a).max(axis=tuple(range(1, a.ndim)), keepdims=True) + 1e-12
        assert np.max(np.abs(a - b) / scale) < 1e-3, name


def _stems_dir(synth, root, layout="demucs"):
    """The synthetic songs' true stems as another tool would write them (links, not copies)."""
    for song_dir in sorted((synth / "stems").iterdir()):
        for wav in song_dir.glob("*.wav"):
            if layout == "demucs":       # separated/htdemucs/<track>/<stem>.wav
                target = root / song_dir.name / wav.name
            else:                        # Wave-U-Net: <file name>_<stem>.wav
                target = root / f"{song_dir.name}.wav_{wav.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(wav)
    return root


def test_precomputed_stems_give_the_oracle_store(oracle_store, synth, tmp_path):
    """stems:DIR reads another tool's stems: here the true ones, so the store's stems and
    features equal the oracle's; a song without its four stems is a recorded failure naming
    the missing stem, and changed stems make a new store."""
    from mer_jax.separation import separator_name
    stems = _stems_dir(synth, tmp_path / "separated" / "htdemucs")
    name = separator_name(f"stems:{stems}")
    assert name == f"stems:{stems.resolve()}"
    path = preprocess(synth, PreprocessConfig.for_clip(name, CLIP), tmp_path / "cache",
                      progress=False)
    assert path.name.startswith("synth-stems-htdemucs-")
    ours, oracle = FeatureStore(path), FeatureStore(oracle_store)
    assert list(ours.status) == [DONE] * 4
    for name_ in ARRAYS:
        np.testing.assert_array_equal(ours.array(name_)[:], oracle.array(name_)[:])
    (stems / "2" / "bass.wav").unlink()
    again = preprocess(synth, PreprocessConfig.for_clip(name, CLIP), tmp_path / "cache",
                       progress=False)
    assert again != path       # the stems' fingerprint is part of the store's hash
    store = FeatureStore(again)
    assert list(store.status) == [DONE, FAILED, DONE, DONE]
    assert store.failures()["2"] == (f"song 2: stems incomplete in {stems / '2'}: missing bass "
                                     "(found vocals, drums, other)")


def test_stems_fingerprint_follows_the_files_content_not_their_times(synth, tmp_path):
    from mer_jax.data import read_dataset
    from mer_jax.separation.stems import StemsSeparator
    songs = read_dataset(synth)
    linked = _stems_dir(synth, tmp_path / "linked")
    copied = tmp_path / "copied"                  # real files, new modification times
    shutil.copytree(linked, copied, copy_function=shutil.copy)
    first = StemsSeparator(linked).fingerprint(songs)
    assert StemsSeparator(copied).fingerprint(songs) == first
    wav = copied / "2" / "bass.wav"
    times = wav.stat().st_atime_ns, wav.stat().st_mtime_ns
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1                                 # same size, same time, other content
    wav.write_bytes(bytes(data))
    os.utime(wav, ns=times)
    assert StemsSeparator(copied).fingerprint(songs) != first


def test_wave_u_net_layout_and_short_stems(synth, tmp_path):
    from mer_jax.separation import SeparationError, make_separator
    stems = _stems_dir(synth, tmp_path / "waveunet", layout="waveunet")
    separator = make_separator(f"stems:{stems}")
    clip = audio.load_clip(synth / "chorus" / "1.wav", seconds=CLIP, mono=False).samples
    truth = np.stack([audio.load_clip(synth / "stems" / "1" / f"{s}.wav", seconds=CLIP).samples
                      for s in ("vocals", "bass", "drums", "other")])
    np.testing.assert_array_equal(separator(clip, synth / "chorus" / "1.wav", "1"), truth)
    short = tmp_path / "short" / "1"
    short.mkdir(parents=True)
    for s, x in zip(("vocals", "bass", "drums", "other"), truth):
        audio.write_wav(short / f"{s}.wav", x[: x.size // 4])
    with pytest.raises(SeparationError, match=r"song 1: stems shorter than the 2.0 s of its "
                                              r"audio used: vocals 0.5 s"):
        make_separator(f"stems:{short.parent}")(clip, synth / "chorus" / "1.wav", "1")
    with pytest.raises(SeparationError, match="song 9: no stems in"):
        separator(clip, synth / "chorus" / "9.wav", "9")
