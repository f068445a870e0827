import warnings

import numpy as np
import pytest
import soundfile as sf

from mer_jax import audio
from mer_jax.audio import AudioError, SilentAudioWarning


def test_decodes_real_pmemo_mp3s(pmemo_mini):
    for path in sorted((pmemo_mini / "chorus").glob("*.mp3")):
        samples, rate = audio.decode(path)
        assert rate == 44_100
        assert samples.dtype == np.float32 and samples.shape[0] == 2
        assert 45 <= samples.shape[1] / rate <= 61
        assert 0.05 < np.abs(samples).max() < 2.0  # mp3 decoding can overshoot full scale


def test_load_clip_fixes_length_on_real_clips(pmemo_mini, emomusic_mini):
    paths = [pmemo_mini / "chorus" / "372.mp3", emomusic_mini / "clips" / "2.mp3"]
    for path in paths:
        clip = audio.load_clip(path)
        assert clip.samples.shape == (45 * 44_100,)
        assert clip.samples.dtype == np.float32
        assert not clip.silent
    long_clip = audio.load_clip(paths[0])
    assert long_clip.source_seconds > 60  # 60.2 s chorus truncated to 45 s
    stereo = audio.load_clip(paths[0], mono=False, seconds=2.0)
    assert stereo.samples.shape == (2, 88_200)
    np.testing.assert_allclose(audio.to_mono(stereo.samples), long_clip.samples[:88_200], atol=1e-6)


def test_resample_keeps_a_tone_and_length(tmp_path):
    t = np.arange(22_050 * 2) / 22_050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.flac"
    sf.write(path, tone, 22_050)
    clip = audio.load_clip(path, seconds=None)
    assert clip.sample_rate == 44_100 and clip.samples.shape == (88_200,)
    spectrum = np.abs(np.fft.rfft(clip.samples))
    assert abs(np.argmax(spectrum) * 44_100 / clip.samples.size - 440) < 1.0


def test_zero_pads_short_clips(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.full(44_100 * 2, 0.25, np.float32), 44_100, subtype="FLOAT")
    clip = audio.load_clip(path, seconds=3.0)
    assert clip.samples.shape == (132_300,)
    assert np.all(clip.samples[: 88_200] == 0.25) and np.all(clip.samples[88_200:] == 0)


def _write(path, samples, rate=44_100, subtype="FLOAT"):
    sf.write(path, samples, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("case, reason", [
    ("missing", "file not found"),
    ("empty", "empty file"),
    ("text", "not a decodable audio file"),
    ("truncated_wav", "truncated"),
    ("truncated_flac", "truncated or corrupt"),
    ("nan", "non-finite"),
    ("too_short", "too short"),
    ("directory", "not a regular file"),
])
def test_bad_input_names_file_and_reason(tmp_path, case, reason):
    noise = (np.random.default_rng(0).standard_normal((44_100 * 2, 2)) * 0.1).astype(np.float32)
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path = tmp_path / "song.mp3"
        path.write_text("this is not audio")
    elif case == "truncated_wav":
        _write(path, noise, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "truncated_flac":
        path = tmp_path / "cut.flac"
        _write(path, noise, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "nan":
        noise[1000, 0] = np.nan
        _write(path, noise)
    elif case == "too_short":
        _write(path, noise[:4410])
    elif case == "directory":
        path = tmp_path / "a_folder.wav"
        path.mkdir()
    with pytest.raises(AudioError) as info:
        audio.load_clip(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    assert info.value.path == str(path) and reason in info.value.reason


def test_silent_audio_is_allowed_but_flagged(tmp_path):
    path = _write(tmp_path / "silence.wav", np.zeros(44_100 * 2, np.float32))
    with pytest.warns(SilentAudioWarning, match="silence.wav"):
        clip = audio.load_clip(path)
    assert clip.silent and clip.samples.shape == (45 * 44_100,)
    loud = _write(tmp_path / "loud.wav", np.full(44_100 * 2, 0.1, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not audio.load_clip(loud).silent


def test_write_wav_round_trip(tmp_path):
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 1000)).astype(np.float32)
    audio.write_wav(tmp_path / "sub" / "x.wav", x)
    y, rate = audio.decode(tmp_path / "sub" / "x.wav")
    assert rate == 44_100
    np.testing.assert_array_equal(x, y)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.wav"]
