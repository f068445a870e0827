import importlib.util
import sys

import numpy as np
import pytest

from mer_jax.data import read_pmemo
from mer_jax.data.tfds_pmemo import prepare_pmemo


def test_pmemo_array_record_without_tensorflow(pmemo_mini, tmp_path):
    if importlib.util.find_spec("tensorflow") is not None:
        # mer-jax never installs TensorFlow; only the benchmark extra (.[bench]) does
        pytest.skip("TensorFlow is installed here (bench extra): the TF-free path is checked "
                    "in environments without it, such as make test's")
    source = prepare_pmemo(manual_dir=pmemo_mini, data_dir=tmp_path / "tfds")
    assert len(source) == 5
    assert list((tmp_path / "tfds" / "pmemo" / "1.0.0").glob("pmemo-train.array_record-*"))
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
    assert len(prepare_pmemo(manual_dir=pmemo_mini, data_dir=tmp_path / "tfds")) == 5
