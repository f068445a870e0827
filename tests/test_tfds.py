import importlib.util
import sys

import numpy as np
import pytest

from mer_jax.data import read_emomusic, read_pmemo
from mer_jax.data.tfds_songs import prepare_songs


def test_pmemo_array_record_without_tensorflow(pmemo_mini, tmp_path):
    if importlib.util.find_spec("tensorflow") is not None:
        # mer-jax never installs TensorFlow; only the benchmark extra (.[bench]) does
        pytest.skip("TensorFlow is installed here (bench extra): the TF-free path is checked "
                    "in environments without it, such as make test's")
    source = prepare_songs(manual_dir=pmemo_mini, data_dir=tmp_path / "tfds")  # detected
    assert len(source) == 5
    assert list((tmp_path / "tfds" / "mer_songs" / "pmemo" / "1.0.0").glob(
        "mer_songs-train.array_record-*"))
    truth = {s.song_id: s for s in read_pmemo(pmemo_mini)}
    seen = set()
    for k in range(len(source)):
        example = source[k]
        song = truth[example["song_id"].decode()]
        seen.add(song.song_id)
        assert example["audio"].shape == (45 * 44_100,) and example["audio"].dtype == np.float32
        for name in ("valence_mean", "arousal_mean", "valence_std", "arousal_std"):
            assert abs(float(example[name]) - getattr(song, name)) < 1e-6
    assert seen == set(truth)
    assert "tensorflow" not in sys.modules
    # a second call reuses the prepared files
    assert len(prepare_songs(manual_dir=pmemo_mini, data_dir=tmp_path / "tfds", dataset="pmemo")) == 5


def test_other_layouts_are_builder_configs(emomusic_mini, tmp_path):
    source = prepare_songs(manual_dir=emomusic_mini, data_dir=tmp_path / "tfds", dataset="emomusic")
    truth = {s.song_id: s for s in read_emomusic(emomusic_mini)}
    assert len(source) == len(truth) == 10
    example = source[0]
    song = truth[example["song_id"].decode()]
    assert abs(float(example["valence_std"]) - song.valence_std) < 1e-6
