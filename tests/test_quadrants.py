"""Quadrant-labelled data (the 4Q dev set in ../shared) and the quadrant scores."""
import shutil

import numpy as np
import pytest

from mer_jax import quadrants
from mer_jax.data import DatasetError, read_quadrant_folders
from mer_jax.preprocess import read_dataset


def test_reads_the_4q_dev_set(shared_data):
    root = shared_data / "4q-dev"
    dataset = read_dataset(root)                       # detected from the layout
    assert dataset.name == "4Q" and dataset.categorical and len(dataset) == 160
    assert dataset.skipped == () and dataset.unannotated == ()
    annotated = {line.split(",")[0]: line.split(",")[1]
                 for line in (root / "annotations.csv").read_text().splitlines()[1:]}
    labels = np.stack([s.labels for s in dataset])
    found = quadrants.quadrant_of(labels[:, 0], labels[:, 1])
    assert [quadrants.QUADRANTS[q] for q in found] == [annotated[s.song_id] for s in dataset]
    assert np.bincount(found).tolist() == [40, 40, 40, 40]
    assert set(np.unique(labels[:, :2])) == {0.25, 0.75}
    np.testing.assert_allclose(labels[:, 2:], quadrants.PROXY_STD, rtol=1e-6)
    assert all(s.audio_path.parent.name == annotated[s.song_id] for s in dataset)


def test_bad_quadrant_folders_are_reported(shared_data, tmp_path):
    root = tmp_path / "4q"
    shutil.copytree(shared_data / "4q-dev", root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    first = next((root / "Q1").glob("*.mp3"))
    first.rename(root / "Q2" / first.name)                       # audio in the wrong folder
    shutil.copy(root / "Q2" / first.name, root / "Q3" / "EXTRA1.mp3")   # audio without annotation
    dataset = read_quadrant_folders(root)
    assert len(dataset) == 159 and dataset.unannotated == (root / "Q3" / "EXTRA1.mp3",)
    (skip,) = dataset.skipped
    assert skip.song_id == first.stem and skip.reason == "annotated Q1 but its audio is in Q2/"
    text = (root / "annotations.csv").read_text()
    (root / "annotations.csv").write_text(text.replace(",Q4,", ",Q5,", 1))
    with pytest.raises(DatasetError, match="quadrant 'Q5' is not one of Q1, Q2, Q3, Q4"):
        read_quadrant_folders(root)


def test_quadrant_of_splits_at_the_middle():
    valence = np.array([0.9, 0.1, 0.1, 0.9, 0.5, 0.49])
    arousal = np.array([0.9, 0.9, 0.1, 0.1, 0.5, 0.5])
    assert quadrants.quadrant_of(valence, arousal).tolist() == [0, 1, 2, 3, 0, 1]


def test_wilson_interval_known_values():
    # Wilson (1927) 95% intervals: two textbook values, then scipy's
    np.testing.assert_allclose(quadrants.wilson_interval(5, 10), (0.2366, 0.7634), atol=1e-4)
    np.testing.assert_allclose(quadrants.wilson_interval(0, 10), (0.0, 0.2775), atol=1e-4)
    from scipy.stats import binomtest          # an independent implementation
    for k, n in ((91, 160), (1, 3), (40, 40), (12, 200)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        np.testing.assert_allclose(quadrants.wilson_interval(k, n), (ci.low, ci.high), atol=1e-6)
    assert all(np.isnan(quadrants.wilson_interval(0, 0)))


def test_scores_confusion_recall_and_the_constant_baseline():
    true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    predicted = np.array([0, 1, 1, 1, 2, 0, 3, 2])
    scores = quadrants.score(true, predicted)
    assert (scores.n, scores.correct, scores.accuracy) == (8, 5, 5 / 8)
    assert scores.recall.tolist() == [0.5, 1.0, 0.5, 0.5]
    assert scores.confusion.sum() == 8 and scores.confusion[0, 1] == 1 and scores.confusion[2, 0] == 1
    assert "quadrant accuracy 62.5%" in scores.describe()
    constant = quadrants.constant_quadrant(np.array([2, 2, 1, 0]))
    assert constant == 2
    balanced = np.repeat(np.arange(4), 10)
    assert quadrants.score(balanced, np.full(40, constant)).accuracy == 0.25   # chance
    with pytest.raises(ValueError, match="0-3"):
        quadrants.score(np.array([0, 4]), np.array([0, 1]))
