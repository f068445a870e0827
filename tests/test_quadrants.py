"""Quadrant-labelled data (the 4Q dev set in ../shared) and the quadrant scores."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_jax import quadrants
from mer_jax.data import DatasetError, read_quadrant_folders
from mer_jax.data import read_dataset


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


def _quadrant_tables(accuracy: dict, songs=120, iterations=4, seeds=(0, 1, 2), seed=0):
    """Prediction tables on quadrant-centre proxies: each input's predicted means land in the
    true quadrant with probability ``accuracy[input]``, elsewhere in a random other quadrant."""
    from mer_jax.predictions import IterationTable
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(4), songs // 4)
    centres = np.array([quadrants.CENTRES[q] for q in quadrants.QUADRANTS])
    truth = np.column_stack([centres[true], np.full((songs, 2), quadrants.PROXY_STD)])
    ids = [f"s{k}" for k in range(songs)]
    tables, train = [], {}
    for it in range(1, iterations + 1):
        test = np.sort(rng.permutation(songs)[:songs // 4])
        train[it] = truth[np.setdiff1d(np.arange(songs), test)]
        for s in seeds:
            predictions = {}
            for name, p in accuracy.items():
                hit = rng.random(test.size) < p
                other = (true[test] + rng.integers(1, 4, test.size)) % 4
                quadrant = np.where(hit, true[test], other)
                means = centres[quadrant] + rng.uniform(-0.2, 0.2, (test.size, 2))
                predictions[name] = np.column_stack([means, np.full((test.size, 2), 0.2)])
            tables.append(IterationTable(it, s, tuple(ids[k] for k in test), truth[test],
                                         predictions, (f"t{it}",)))
    return tables, train


def test_categorical_evaluation_scores_quadrants_and_gates_on_them(tmp_path):
    from mer_jax import evaluate, report, verdict
    tables, train = _quadrant_tables({"mixed": 0.8, "sep": 0.25})
    evaluation = evaluate.evaluate_iterations(tables, train_labels=train, model="CRNN",
                                              categorical=True)
    pooled = {r["input"]: r for r in evaluation.quadrant_rows if r["iteration"] == "pooled"}
    assert set(pooled) == {"mixed", "sep", "constant"}
    assert 0.72 < pooled["mixed"]["accuracy"] < 0.88 and 0.15 < pooled["sep"]["accuracy"] < 0.35
    assert pooled["mixed"]["ci_low"] < pooled["mixed"]["accuracy"] < pooled["mixed"]["ci_high"]
    # every song once: the pooled row's songs are the distinct songs tested
    assert pooled["mixed"]["songs"] == len({s for t in tables for s in t.song_ids})
    for name in ("mixed", "sep"):     # confusion: every test prediction, diagonal = hits
        counts = evaluation.confusion[name]
        assert counts.sum() == sum(len(t.song_ids) for t in tables)
        hits = sum(h[name].sum() for h in evaluation.hits.values()) * 3
        assert np.trace(counts) == pytest.approx(hits)
    mixed, sep = verdict.gate(evaluation, "mixed"), verdict.gate(evaluation, "sep")
    assert isinstance(mixed, verdict.QuadrantSkill) and mixed.learned and mixed.p < 1e-6
    assert not sep.learned and set(sep.seed_accuracy) == {0, 1, 2}
    summary = report.summarize("CRNN", evaluation)
    assert summary.verdict.startswith("no verdict: the sep model did not learn (quadrant "
                                      "accuracy not significantly above")
    evaluate.write_evaluation(evaluation, tmp_path)
    lines = (tmp_path / "quadrants.csv").read_text().splitlines()
    assert lines[0] == ("iteration,input,songs,accuracy,ci_low,ci_high,recall_Q1,recall_Q2,"
                        "recall_Q3,recall_Q4")
    assert (tmp_path / "confusion.csv").read_text().splitlines()[0] == "input,true,Q1,Q2,Q3,Q4"
    path = report.write_report(tmp_path / "report", {"CRNN": evaluation}, {}, "t", [])
    text = path.read_text()
    assert "quadrant accuracy" in text and "Confusion, mixed" in text and "**did not learn**" in text


def test_quadrant_verdict_compares_accuracies_not_kl():
    from mer_jax import evaluate, report
    tables, train = _quadrant_tables({"mixed": 0.5, "sep": 0.9}, songs=160)
    evaluation = evaluate.evaluate_iterations(tables, train_labels=train, categorical=True)
    summary = report.summarize("RF", evaluation)
    assert all(s.learned for s in summary.skills.values())
    c = summary.comparison
    assert c.measure == "quadrant miss rate" and c.better == "sep" and c.interval[0] > 0
    assert summary.verdict == "sep predicts the quadrants better (higher per-song accuracy)"
    assert "quadrant miss rate per song" in report.conclusion(summary)
    plain = evaluate.evaluate_iterations(tables, train_labels=train)      # not categorical
    assert not plain.quadrant_rows and report.summarize("RF", plain).comparison.measure == "KL"


def test_evaluate_cli_scores_quadrants(tmp_path, capsys):
    from mer_jax import evaluate
    from mer_jax.predictions import write_prediction_table
    tables, _ = _quadrant_tables({"mixed": 0.7, "sep": 0.6}, seeds=(0,))
    for t in tables:
        write_prediction_table(tmp_path / f"m_iteration_{t.iteration}.csv", t.song_ids, t.truth,
                               t.predictions)
    assert evaluate.main(["--predictions", str(tmp_path / "m_iteration_*.csv"), "--out",
                          str(tmp_path / "out"), "--quadrants"]) == 0
    printed = capsys.readouterr().out
    assert "(recall; chance 25%)" in printed and "constant" in printed
    rows = (tmp_path / "out" / "quadrants.csv").read_text().splitlines()
    assert sum(line.startswith("pooled,") for line in rows) == 3     # mixed, sep, constant
    assert evaluate.main(["--predictions", str(tmp_path / "m_iteration_*.csv"), "--out",
                          str(tmp_path / "out")]) == 0                 # not categorical: removed
    assert not (tmp_path / "out" / "quadrants.csv").exists()


@pytest.mark.slow
def test_release_model_trains_on_quadrant_folders_and_predicts(tiny_store, tmp_path, capsys):
    """pipelines.train_release on a 4Q-layout folder (16 synthetic 3 s songs, 4 per quadrant),
    small_real at the tests' widths; its workdir is a --checkpoint for prediction."""
    from conftest import TINY_OVERRIDES
    from mer_jax import inference
    from mer_jax.store import FeatureStore
    from pipelines import train_release
    songs = sorted((Path(FeatureStore(tiny_store).attrs["dataset"]["root"]) / "chorus").glob(
        "*.wav"), key=lambda p: int(p.stem))
    root = tmp_path / "4q"
    lines = ["Song,Quadrant"]
    for k, song in enumerate(songs):
        quadrant = quadrants.QUADRANTS[k % 4]
        (root / quadrant).mkdir(parents=True, exist_ok=True)
        shutil.copy(song, root / quadrant / f"S{k}.wav")
        lines.append(f"S{k},{quadrant}")
    (root / "annotations.csv").write_text("\n".join(lines) + "\n")
    work = tmp_path / "release"
    assert train_release.main(["--data-dir", str(root), "--cache-dir", str(tmp_path / "cache"),
                               "--workdir", str(work), "--clip-seconds", "3", "--workers", "1",
                               *(f"--set={o}" for o in TINY_OVERRIDES)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(work.resolve()) and "held-out check (2 songs)" in printed[-3]
    saved = json.loads((work / "splits.json").read_text())          # stratified by quadrant
    assert saved["stratified"] and len({int(s[1:]) % 4 for s in saved["splits"][0]["test"]}) == 2
    model = inference.load_model(work)
    assert model.mode == "mixed" and model.config.model.summary == "pool"
    assert model.config.crop_bins == 128 and model.config.time_pool == "mean"
    result = inference.Predictor(model)(root / "Q1" / "S0.wav")
    assert result.values.shape == (4,) and np.all(np.isfinite(result.values))


def test_real_music_rows_give_r_with_its_yardsticks():
    """benchmarks/real_music.py's table: quadrant accuracy, r with Fisher intervals, the
    constant's r, and bold where the partial r given the training mean shows no skill."""
    import types

    from benchmarks import real_music
    from mer_jax import evaluate
    tables, train = _quadrant_tables({"mixed": 0.9, "sep": 0.25})
    evaluation = evaluate.evaluate_iterations(tables, train_labels=train, categorical=True)
    rows = real_music.rows_of(types.SimpleNamespace(evaluations={"CRNN": evaluation}))
    mixed, sep = rows
    assert mixed["learned"] and mixed["r_valence"] > 0.5 and mixed["r_valence_partial_ci"][0] > 0
    assert sep["r_valence_partial_ci"][0] < 0 < sep["r_valence_partial_ci"][1]
    table = real_music.markdown(rows).splitlines()
    assert table[0].count("|") == 11 and "r constant" in table[0]
    assert table[2].count("**") == 0 and table[3].count("**") == 4    # sep: valence, arousal
