import shutil

import numpy as np
import pytest

from mer_jax.data import DatasetError, read_emomusic, read_pmemo

PMEMO_LABELS = {  # musicId: valence mean, arousal mean, valence std, arousal std (PMEmo's files)
    "17": (0.675, 0.825, 0.195256241898, 0.139194109071),
    "108": (0.8625, 0.8625, 0.0875, 0.0673145600892),
    "372": (0.175, 0.825, 0.195256241898, 0.187082869339),
    "634": (0.2375, 0.225, 0.205015243336, 0.175),
    "683": (0.7375, 0.2375, 0.219729947891, 0.103832798286),
}


def test_reads_real_pmemo_layout(pmemo_mini):
    dataset = read_pmemo(pmemo_mini)
    assert [s.song_id for s in dataset] == ["17", "108", "372", "634", "683"]
    assert dataset.skipped == ()
    for song in dataset:
        np.testing.assert_allclose(song.labels, PMEMO_LABELS[song.song_id], rtol=1e-6)
        assert song.audio_path.is_file() and song.audio_path.name == f"{song.song_id}.mp3"


@pytest.fixture
def pmemo_copy(pmemo_mini, tmp_path):
    root = tmp_path / "PMEmo2019"
    shutil.copytree(pmemo_mini, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    root.chmod(0o755)
    return root


def _edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def test_missing_audio_and_std_are_reported_not_fatal(pmemo_copy):
    (pmemo_copy / "chorus" / "108.mp3").unlink()
    _edit(pmemo_copy / "annotations" / "static_annotations_std.csv",
          "634,0.175,0.205015243336\n", "")
    dataset = read_pmemo(pmemo_copy)
    assert [s.song_id for s in dataset] == ["17", "372", "683"]
    reasons = {s.song_id: s.reason for s in dataset.skipped}
    assert "no audio" in reasons["108"] and "missing std" in reasons["634"]
    assert "108" in dataset.report() and "634" in dataset.report()


def test_audio_without_annotation_is_listed(pmemo_copy, emomusic_mini, tmp_path):
    shutil.copy(pmemo_copy / "chorus" / "17.mp3", pmemo_copy / "chorus" / "9999.mp3")
    dataset = read_pmemo(pmemo_copy)
    assert len(dataset) == 5 and dataset.unannotated == (pmemo_copy / "chorus" / "9999.mp3",)
    assert "1 audio files without annotation" in dataset.report()
    assert f"  no annotation: {pmemo_copy / 'chorus' / '9999.mp3'}" in dataset.report()
    emo = tmp_path / "emo"
    shutil.copytree(emomusic_mini, emo)
    (emo / "clips").chmod(0o755)
    clip = next((emo / "clips").glob("*.mp3"))
    shutil.copy(clip, emo / "clips" / "77777.mp3")
    assert read_emomusic(emo).unannotated == (emo / "clips" / "77777.mp3",)


def test_duplicate_ids_are_rejected(pmemo_copy):
    path = pmemo_copy / "annotations" / "static_annotations.csv"
    path.write_text(path.read_text() + "17.0,0.5,0.5\n")
    with pytest.raises(DatasetError, match="duplicate song ids: 17"):
        read_pmemo(pmemo_copy)


def test_out_of_range_labels_are_rejected(pmemo_copy):
    _edit(pmemo_copy / "annotations" / "static_annotations.csv", "372,0.825,0.175", "372,0.825,1.75")
    with pytest.raises(DatasetError, match=r"song 372: Valence\(mean\) = 1.75 is outside"):
        read_pmemo(pmemo_copy)


def test_missing_annotation_file_is_a_clear_error(pmemo_copy):
    (pmemo_copy / "annotations" / "static_annotations.csv").unlink()
    with pytest.raises(DatasetError, match="static_annotations.csv: annotation file not found"):
        read_pmemo(pmemo_copy)


def test_reads_emomusic_and_normalizes_to_unit_scale(emomusic_mini):
    dataset = read_emomusic(emomusic_mini)
    assert len(dataset) == 10 and dataset.skipped == ()
    song = next(s for s in dataset if s.song_id == "3")  # 3.5/1.8409 arousal, 3.3/1.7029 valence
    np.testing.assert_allclose(song.labels, [(3.3 - 1) / 8, (3.5 - 1) / 8, 1.7029 / 8, 1.8409 / 8],
                               rtol=1e-6)
    assert all(0 <= v <= 1 for s in dataset for v in s.labels)


def _deam_from_emomusic(emomusic_mini, root, second_file_ids=("10", "12")):
    """emomusic-mini laid out as DEAM: the 2013 songs are DEAM's 1-1000. Two songs go into the
    second annotation file; the audio are links to the shared clips (nothing copied)."""
    from mer_jax.data.songs import read_rows
    rows = read_rows(emomusic_mini / "static_annotations.csv", ("song_id",))
    song_level = root / "DEAM_Annotations/annotations/annotations averaged per song/song_level"
    song_level.mkdir(parents=True)
    files = {name: [" song_id, valence_mean, valence_std, arousal_mean, arousal_std"]
             for name in ("1_2000", "2000_2058")}
    for r in rows:
        name = "2000_2058" if r["song_id"] in second_file_ids else "1_2000"
        files[name].append(f"{r['song_id']}, {r['mean_valence']}, {r['std_valence']}, "
                           f"{r['mean_arousal']}, {r['std_arousal']}")
    for name, lines in files.items():
        (song_level / f"static_annotations_averaged_songs_{name}.csv").write_text(
            "\n".join(lines) + "\n")
    audio = root / "DEAM_audio" / "MEMD_audio"
    audio.mkdir(parents=True)
    for clip in (emomusic_mini / "clips").glob("*.mp3"):
        (audio / clip.name).symlink_to(clip)
    return song_level


def test_deam_layout_reads_like_emomusic(emomusic_mini, tmp_path):
    from mer_jax.data import detect_dataset, read_dataset
    root = tmp_path / "DEAM"
    _deam_from_emomusic(emomusic_mini, root)
    assert detect_dataset(root) == "deam"
    deam, emo = read_dataset(root), read_emomusic(emomusic_mini)
    assert deam.name == "DEAM" and [s.song_id for s in deam] == [s.song_id for s in emo]
    for a, b in zip(deam, emo):
        np.testing.assert_allclose(a.labels, b.labels, rtol=1e-6)
        assert a.audio_path.name == b.audio_path.name


def test_deam_errors_name_the_song(emomusic_mini, tmp_path):
    from mer_jax.data import read_deam
    root = tmp_path / "DEAM"
    song_level = _deam_from_emomusic(emomusic_mini, root)
    (root / "DEAM_audio" / "MEMD_audio" / "13.mp3").unlink()
    assert {s.song_id: s.reason for s in read_deam(root).skipped} == {
        "13": "no audio file MEMD_audio/13.mp3"}
    second = song_level / "static_annotations_averaged_songs_2000_2058.csv"
    second.write_text(second.read_text() + "2, 5.0, 1.0, 5.0, 1.0\n")   # 2 is in the first file
    with pytest.raises(DatasetError, match="song 2: ratings differ"):
        read_deam(root)
    second.write_text(second.read_text().replace("2, 5.0, 1.0", "2, 9.5, 1.0"))
    with pytest.raises(DatasetError, match="song 2: valence_mean = 9.5 is outside"):
        read_deam(root)


def _annotated_folder(pmemo_mini, root, scale="1-9"):
    """PMEmo-mini's songs as a generic annotations.csv on the 1-9 scale, audio in subfolders."""
    (root / "rock").mkdir(parents=True)
    lines = ["path,valence_mean,arousal_mean,valence_std,arousal_std"]
    for song in read_pmemo(pmemo_mini):
        (root / "rock" / song.audio_path.name).symlink_to(song.audio_path)
        v, a, vs, as_ = (song.valence_mean * 8 + 1, song.arousal_mean * 8 + 1,
                         song.valence_std * 8, song.arousal_std * 8)
        lines.append(f"rock/{song.audio_path.name},{v},{a},{vs},{as_}")
    (root / "annotations.csv").write_text("\n".join(lines) + "\n")
    if scale:
        (root / "dataset.json").write_text(f'{{"scale": "{scale}"}}')


def test_annotated_csv_folder(pmemo_mini, tmp_path):
    from mer_jax.data import detect_dataset, read_dataset
    root = tmp_path / "mine"
    _annotated_folder(pmemo_mini, root)
    assert detect_dataset(root) == "csv"
    dataset = read_dataset(root, "csv")
    assert [s.song_id for s in dataset] == [f"rock/{i}" for i in ("108", "17", "372", "634", "683")]
    for song in dataset:
        np.testing.assert_allclose(song.labels, PMEMO_LABELS[song.song_id[5:]], rtol=1e-5)
    # an empty cell and a missing file are skipped with their reasons; extra audio is listed
    text = (root / "annotations.csv").read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ","
    (root / "annotations.csv").write_text("\n".join(text + ["gone.wav,5,5,1,1"]) + "\n")
    (root / "rock" / "extra.mp3").symlink_to(pmemo_mini / "chorus" / "17.mp3")
    dataset = read_dataset(root)
    reasons = {s.song_id: s.reason for s in dataset.skipped}
    assert reasons == {"rock/17": "empty arousal_std", "gone": "no audio file gone.wav"}
    assert dataset.unannotated == (root / "rock" / "extra.mp3",)


def test_annotated_csv_needs_a_declared_scale(pmemo_mini, tmp_path):
    from mer_jax.data import read_csv_dataset
    root = tmp_path / "mine"
    _annotated_folder(pmemo_mini, root, scale=None)
    with pytest.raises(DatasetError, match=r'no rating scale declared.*dataset.json.*"scale": "1-9"'):
        read_csv_dataset(root)
    (root / "dataset.json").write_text('{"scale": "1-5"}')
    with pytest.raises(DatasetError, match="unknown scale '1-5'"):
        read_csv_dataset(root)
    (root / "dataset.json").write_text('{"scale": "0-1"}')   # 1-9 values on a 0-1 scale
    with pytest.raises(DatasetError, match="is outside"):
        read_csv_dataset(root)


def test_dataset_kind_is_detected_or_named(pmemo_mini, emomusic_mini, shared_data, tmp_path):
    from mer_jax.data import detect_dataset, read_dataset
    assert detect_dataset(pmemo_mini) == "pmemo"
    assert detect_dataset(emomusic_mini) == "emomusic"
    assert detect_dataset(shared_data / "4q-dev") == "4q"
    assert read_dataset(emomusic_mini, "emomusic").name == "emoMusic"
    with pytest.raises(DatasetError, match="no known dataset layout"):
        detect_dataset(tmp_path)
    with pytest.raises(DatasetError, match="static_annotations_averaged_songs_1_2000.csv not found"):
        read_dataset(pmemo_mini, "deam")


def test_commands_take_the_dataset_kind_and_stems_dir(pmemo_mini, tmp_path, capsys):
    from pipelines import experiment
    from pipelines import preprocess as preprocess_cli
    assert preprocess_cli.main(["--data-dir", str(pmemo_mini), "--dataset", "deam",
                                "--cache-dir", str(tmp_path)]) == 2
    assert "static_annotations_averaged_songs_1_2000.csv not found" in capsys.readouterr().err
    (tmp_path / "stems").mkdir()
    settings, _ = experiment.parse_args(
        ["--config", "small", "--data-dir", str(pmemo_mini), "--workdir", str(tmp_path / "w"),
         "--dataset", "pmemo", "--separator", f"stems:{tmp_path / 'stems'}"])
    assert settings.dataset == "pmemo"
    assert settings.separator == f"stems:{(tmp_path / 'stems').resolve()}"
    with pytest.raises(SystemExit):
        experiment.parse_args(["--config", "small", "--data-dir", str(pmemo_mini), "--workdir",
                               str(tmp_path / "w"), "--separator", "stems:/no/such/dir"])
    assert "/no/such/dir is not a folder" in capsys.readouterr().err
