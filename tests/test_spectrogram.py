"""The two spectrogram kinds: the paper's |STFT| and mel bands (mer_jax.features.spectrogram)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax.features.dsp import hz_to_mel, mel_filterbank
from mer_jax.features.spectrogram import SpectrogramConfig, spectrogram
from mer_jax.preprocess import PreprocessConfig, preprocess
from mer_jax.store import FeatureStore, StoreError

SR = 44_100


def _config(kind: str, samples: int) -> SpectrogramConfig:
    """``kind`` at one output time bin per frame (no resize)."""
    frames = SpectrogramConfig.frames_for(samples)
    return dataclasses.replace(SpectrogramConfig.named(kind, frames), time_bins=frames)


def test_mel_filterbank_bands_are_normalised_and_a_third_lie_below_1_khz():
    bank = mel_filterbank(129, 4096, SR, 30.0, 11_025.0)
    assert bank.shape == (129, 2049) and bank.dtype == np.float32
    np.testing.assert_allclose(bank.sum(axis=1), 1.0, rtol=1e-6)
    freqs = np.arange(2049) * SR / 4096
    centres = bank @ freqs                       # each band's mean frequency
    assert np.all(np.diff(centres) > 0) and 30 < centres[0] < centres[-1] < 11_025
    assert 39 <= np.count_nonzero(centres < 1000) <= 41       # the paper's |STFT|: 6 bins
    # bands narrower than the FFT's bins take their nearest bin instead of staying empty
    coarse = mel_filterbank(129, 256, SR, 30.0, 11_025.0)
    assert np.all(coarse.max(axis=1) > 0) and np.count_nonzero(coarse.max(axis=1) == 1) > 50
    for fmin, fmax in ((0.0, 30_000.0), (500.0, 400.0), (-1.0, 1000.0)):
        with pytest.raises(ValueError, match="Nyquist"):
            mel_filterbank(129, 4096, SR, fmin, fmax)
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))


TONES = (110.0, 220.0, 233.08, 440.0, 466.16, 880.0, 932.33, 4000.0)


def test_mel_bands_resolve_a_semitone_where_the_papers_bins_do_not():
    t = np.arange(SR) / SR
    peaks = {}
    for kind in ("stft", "mel"):
        config = _config(kind, t.size)
        for f in TONES:
            tone = (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
            spec = np.asarray(spectrogram(jnp.asarray(tone[None]), config, SR))[0]
            assert spec.shape == (129, config.time_bins) and np.isfinite(spec).all()
            peaks[kind, f] = int(spec.mean(axis=1).argmax())
    assert peaks["stft", 220.0] == peaks["stft", 233.08] == 1        # 172 Hz bins
    bank = mel_filterbank(129, 4096, SR, 30.0, 11_025.0)
    centres = bank @ (np.arange(2049) * SR / 4096)
    for f in TONES:                  # the peak band is centred within 2/3 of a semitone
        assert abs(np.log(centres[peaks["mel", f]] / f)) < 0.04, f
    # bands 17-24 Hz apart below 440 Hz: from A4 up, neighbouring semitones are told apart
    assert peaks["mel", 110.0] < peaks["mel", 220.0] < peaks["mel", 440.0] \
        < peaks["mel", 466.16] < peaks["mel", 880.0] < peaks["mel", 932.33]


def test_mel_frames_are_centred_on_the_papers_frame_grid():
    """A click lands in the same frame in both kinds (longer windows are centred, not delayed)."""
    samples, click = SR // 2, 10_000
    wave = np.zeros(samples, np.float32)
    wave[click] = 1.0
    frames = {}
    for kind in ("stft", "mel"):
        spec = np.asarray(spectrogram(jnp.asarray(wave[None]), _config(kind, samples), SR))[0]
        frames[kind] = int(spec.sum(axis=0).argmax())
    centre = round((click - 127) / 128)                # paper frame t is centred at 128 t + 127
    assert frames["mel"] == centre and abs(frames["stft"] - centre) <= 1
    with pytest.raises(ValueError, match="sample rate"):
        spectrogram(jnp.asarray(wave[None]), _config("mel", samples))


def test_the_papers_spectrogram_keeps_its_identity_and_configs_round_trip():
    stft = PreprocessConfig.for_clip("oracle", 3.0)
    mel = PreprocessConfig.for_clip("oracle", 3.0, "mel")
    # the store identity of |STFT| stores made before mel bands existed
    assert set(stft.to_dict()["spectrogram"]) == {"frame_length", "fft_length", "hop",
                                                 "n_frames", "time_bins"}
    assert mel.to_dict()["spectrogram"]["mel_bands"] == 129
    assert mel.spectrogram.n_frames == stft.spectrogram.n_frames
    for config in (stft, mel):
        assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert (stft.spectrogram.kind, mel.spectrogram.kind) == ("stft", "mel")
    with pytest.raises(ValueError, match="one of"):
        SpectrogramConfig.named("cqt")
    with pytest.raises(ValueError, match="mel bands"):
        SpectrogramConfig(fmax=8000.0)


def test_a_mel_store_holds_mel_bands_and_training_refuses_the_other_kind(tiny_store, tmp_path):
    from mer_jax.training.data import ModelInputs
    synth = tiny_store.parent.parent / "synth"
    config = PreprocessConfig.for_clip("oracle", 3.0, "mel")
    path = preprocess(synth, config, tmp_path / "cache", progress=False)
    assert path != tiny_store
    store = FeatureStore(path)
    assert store.array("sep/spectrogram").shape == (16, 4, 129, 2048)
    assert store.attrs["config"]["spectrogram"]["mel_bands"] == 129
    stems = store.array("sep/stems")[2]
    np.testing.assert_allclose(store.array("sep/spectrogram")[2],
                               np.asarray(spectrogram(jnp.asarray(stems), config.spectrogram, SR)),
                               rtol=1e-5, atol=1e-6)
    # the mixed openSMILE features do not depend on the spectrogram
    np.testing.assert_array_equal(store.array("mixed/opensmile")[:],
                                  FeatureStore(tiny_store).array("mixed/opensmile")[:])
    assert ModelInputs(store, "sep", 256, True, spectrogram="mel").shape == (129, 256, 4)
    for wrong, kind in ((store, "stft"), (FeatureStore(tiny_store), "mel")):
        with pytest.raises(StoreError, match=f"preprocess with --spectrogram {kind}"):
            ModelInputs(wrong, "mixed", 256, True, spectrogram=kind)


def test_training_a_mel_config_on_an_stft_store_is_a_clear_cli_error(tiny_store, tmp_path, capsys):
    from mer_jax import train
    code = train.main(["--mode", "mixed", "--config", "small_real", "--store", str(tiny_store),
                       "--workdir", str(tmp_path / "work")])
    assert code == 2
    assert "the config trains on 'mel' spectrograms" in capsys.readouterr().err
    assert not (tmp_path / "work" / "checkpoints").exists()
