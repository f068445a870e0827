"""Splits: Monte-Carlo (seeded, stratified) and the test songs of earlier prediction tables."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from mer_jax.data import read_dataset
from mer_jax.predictions import read_iterations, write_prediction_table
from mer_jax.store import FeatureStore
from mer_jax.training import steps
from mer_jax.training.loop import train_and_evaluate
from mer_jax.training.splits import (_test_shares, load_or_create_splits, monte_carlo_splits,
                                     splits_from_tables, store_splits)


def test_splits_are_saved_and_reused(tmp_path):
    ids = [str(i) for i in range(20)]
    splits = load_or_create_splits(tmp_path / "splits.json", ids, 3, 0.2, seed=1)
    assert [len(s["test"]) for s in splits] == [4, 4, 4]
    assert all(not set(s["train"]) & set(s["test"]) for s in splits)
    assert splits[0]["test"] != splits[1]["test"]
    assert load_or_create_splits(tmp_path / "splits.json", ids, 2, 0.2, seed=1) == splits[:2]
    with pytest.raises(ValueError, match="other splits"):
        load_or_create_splits(tmp_path / "splits.json", ids, 3, 0.2, seed=2)


def test_stratified_splits_keep_each_class_share(tmp_path):
    """Quadrant-labelled songs: every test set takes each class's share (largest remainders);
    without strata the splits are the ones earlier versions saved (a seeded permutation)."""
    ids = [f"s{i}" for i in range(50)]
    strata = [0] * 20 + [1] * 15 + [2] * 10 + [3] * 5
    splits = monte_carlo_splits(ids, 4, 0.2, seed=3, strata=strata)
    klass = dict(zip(ids, strata))
    for split in splits:
        assert np.bincount([klass[s] for s in split["test"]]).tolist() == [4, 3, 2, 1]
        assert sorted(split["train"] + split["test"]) == sorted(ids)
    assert len({tuple(s["test"]) for s in splits}) == 4
    assert monte_carlo_splits(ids, 4, 0.2, seed=3, strata=strata) == splits
    assert _test_shares([40, 40, 40, 40], 32) == [8, 8, 8, 8]
    assert _test_shares([10, 3, 7], 5) == [2, 1, 2]      # remainders .5, .75, .75
    order = np.random.default_rng([3, 0]).permutation(50)     # the unstratified law
    assert monte_carlo_splits(ids, 1, 0.2, seed=3)[0]["test"] == [
        ids[i] for i in sorted(order[:10])]
    load_or_create_splits(tmp_path / "splits.json", ids, 2, 0.2, 3, strata)
    with pytest.raises(ValueError, match="stratification"):
        load_or_create_splits(tmp_path / "splits.json", ids, 2, 0.2, 3)
    with pytest.raises(ValueError, match="49 strata for 50 songs"):
        monte_carlo_splits(ids, 1, 0.2, 3, strata[:-1])


def test_the_paper_authors_test_songs_on_the_pmemo_clips(pmemo_mini, paper_predictions,
                                                         tmp_path):
    """The authors' CRNN tables list 154 test songs per iteration ("17.0"); of the 5 PMEmo clips
    here, iteration 1 tested 17 and 372, iteration 2 tested 372, iteration 3 none of them. Their
    ground truth is PMEmo's, so a store of another dataset with the same ids is refused."""
    songs = read_dataset(pmemo_mini).songs
    ids, labels = [s.song_id for s in songs], np.stack([s.labels for s in songs])
    assert ids == ["17", "108", "372", "634", "683"]
    crnn = str(paper_predictions / "crnn_iteration_*.csv")
    splits = splits_from_tables(crnn, ids, labels, 2)
    assert splits == [{"iteration": 1, "train": ["108", "634", "683"], "test": ["17", "372"]},
                      {"iteration": 2, "train": ["17", "108", "634", "683"], "test": ["372"]}]
    with pytest.raises(ValueError, match="iteration 3: 0 of the store's 5 songs are among its 154"):
        splits_from_tables(crnn, ids, labels, 3)
    other = labels.copy()
    other[2, 1] += 0.05                                       # song 372's arousal mean
    with pytest.raises(ValueError, match=r"differs from the store's labels for songs \['372'\]"):
        splits_from_tables(crnn, ids, other, 1)
    with pytest.raises(ValueError, match="iteration 1 test different songs|songs differ"):
        splits_from_tables(str(paper_predictions / "*_iteration_*.csv"), ids, labels, 1)
    shutil.copy(paper_predictions / "crnn_iteration_1.csv", tmp_path / "crnn_iteration_1.csv")
    with pytest.raises(ValueError, match=r"no table of iteration\(s\) \[2\]"):
        splits_from_tables(str(tmp_path / "crnn_iteration_*.csv"), ids, labels, 2)
    with pytest.raises(ValueError, match="no file matches"):
        splits_from_tables(str(tmp_path / "rf_iteration_*.csv"), ids, labels, 1)


def test_a_run_on_earlier_tables_test_songs(tiny_store, tiny_config, tmp_path):
    """Tables that tested split 1's songs and 2 of split 2's: model 1 trains and predicts exactly
    as in the Monte-Carlo run (byte-identical table, the step count fixed), model 2 is tested on
    its 2 songs (test sets of unequal sizes: its evaluation batches are padded) and its last
    validation loss is the loss of its predictions. A workdir keeps the kind of splits it has."""
    config = dataclasses.replace(tiny_config, steps_per_epoch=3, eval_batch_size=3)
    first = train_and_evaluate(config, tiny_store, tmp_path / "a", "mixed", progress=False)
    monte_carlo = json.loads((tmp_path / "a" / "splits.json").read_text())["splits"]
    store = FeatureStore(tiny_store)
    row = {song: k for k, song in enumerate(store.ids)}
    tested = [monte_carlo[0]["test"], monte_carlo[1]["test"][:2]]
    for n, songs in enumerate(tested, 1):
        truth = store.labels[[row[s] for s in songs]]
        write_prediction_table(tmp_path / "tables" / f"crnn_iteration_{n}.csv", songs, truth,
                               {"mixed": truth})
    tables = dataclasses.replace(config, test_songs_from=str(tmp_path / "tables" / "crnn_*.csv"))
    second = train_and_evaluate(tables, tiny_store, tmp_path / "b", "mixed", progress=False)
    saved = json.loads((tmp_path / "b" / "splits.json").read_text())
    assert saved["test_songs_from"] == tables.test_songs_from
    assert saved["splits"][0] == monte_carlo[0]
    assert saved["splits"][1]["test"] == tested[1] and len(saved["splits"][1]["train"]) == 14
    respelt = dataclasses.replace(tables, test_songs_from=str(tmp_path / "tables" / "." / "c*.csv"))
    assert store_splits(tmp_path / "b" / "splits.json", store, 2, respelt) == saved["splits"]
    assert first.predictions[0].read_bytes() == second.predictions[0].read_bytes()
    predicted = read_iterations([second.predictions[1]])[0]
    assert list(predicted.song_ids) == tested[1]
    last = [json.loads(line) for line in (tmp_path / "b" / "metrics_mixed.jsonl")
            .read_text().splitlines() if '"val"' in line][-1]
    assert last["step"] == 3
    expected = steps.loss_value(predicted.predictions["mixed"].astype(np.float32),
                                predicted.truth.astype(np.float32), tables.loss)
    np.testing.assert_allclose(last["loss"][1], float(expected), rtol=1e-5)
    with pytest.raises(ValueError, match="holds the test songs of"):
        train_and_evaluate(config, tiny_store, tmp_path / "b", "sep", progress=False)
    with pytest.raises(ValueError, match="holds other splits than the test songs"):
        train_and_evaluate(tables, tiny_store, tmp_path / "a", "sep", progress=False)
