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
