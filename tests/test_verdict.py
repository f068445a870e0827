"""Baselines, the skill gate, the verdict and the seed-aware evaluation."""
import csv
import dataclasses

import numpy as np
import pytest

from mer_jax import baselines, evaluate, report, verdict
from mer_jax.predictions import (IterationTable, PredictionTableError, read_iterations,
                                 table_key, table_name, write_prediction_table)

BASELINES_HEADER = ("iteration,model,input,E_model,E_constant,E_calibrated,W_model_constant,"
                    "W_model_calibrated")


def _numpy_kl(truth, prediction):
    var_gt, var_pr = truth[:, 2:] ** 2, prediction[:, 2:] ** 2
    return 0.5 * np.sum((prediction[:, :2] - truth[:, :2]) ** 2 / var_pr + var_gt / var_pr
                        - np.log(var_gt / var_pr) - 1, axis=1)


def test_baseline_kls_equal_an_independent_numpy_computation(paper_predictions):
    tables = read_iterations(sorted(paper_predictions.glob("crnn_iteration_*.csv")))
    train = baselines.training_labels_from_tables(tables)
    for table in tables[:3]:
        labels = {s: row for t in tables for s, row in zip(t.song_ids, t.truth)}
        mine = np.array([row for s, row in labels.items() if s not in set(table.song_ids)])
        assert np.allclose(np.sort(mine, axis=0), np.sort(train[table.iteration], axis=0))
        means = mine.mean(axis=0)
        wide = means.copy()
        wide[2:] = np.sqrt((mine[:, 2:] ** 2).mean(axis=0) + mine[:, :2].var(axis=0))
        got = baselines.baseline_kl(table.truth, train[table.iteration])
        for name, row in (("constant", means), ("calibrated", wide)):
            want = _numpy_kl(table.truth, np.tile(row, (len(table.truth), 1)))
            np.testing.assert_allclose(got[name], want, rtol=2e-5)
    # the figures: constant about 1.4-1.6, calibrated about 0.9-1.05 per iteration
    means = [baselines.baseline_kl(t.truth, train[t.iteration]) for t in tables]
    assert all(1.3 < m["constant"].mean() < 1.7 and 0.85 < m["calibrated"].mean() < 1.06
               for m in means)


def test_reproduce_paper_writes_baselines_and_says_who_beats_them(paper_predictions, tmp_path,
                                                                  capsys):
    from pipelines import reproduce_paper
    assert reproduce_paper.main(["--predictions-dir", str(paper_predictions),
                                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for model in ("crnn", "rf"):
        lines = (tmp_path / model / "baselines.csv").read_text().splitlines()
        assert lines[0] == BASELINES_HEADER and len(lines) == 21
        assert lines[1].split(",")[:3] == ["1", model.upper(), "mixed"]
    assert "CRNN mixed: mean KL 0.924; beats" in out
    assert "does not beat (p = 1) the calibrated constant" in out      # CRNN sep and the RF
    assert "RF mixed: mean KL 2.244; does not beat" in out
    lines = {line.split(":")[0]: line for line in out.splitlines() if "pooled over" in line}
    assert "valence r +0.58, partial +0.57 (+0.52 to +0.62: above the constant, r -0.10)" \
        in lines["CRNN mixed"]
    assert lines["RF mixed"].count("not above the constant") == 2


def _synthetic_evaluation(noise_mixed: float, noise_sep: float, seeds=(None,), songs=80,
                          iterations=3, seed=0):
    """Tables whose predictions are the labels + noise (a model that learned) or pure noise."""
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in range(songs)]
    truth = np.column_stack([rng.uniform(0.2, 0.8, (songs, 2)), rng.uniform(0.1, 0.2, (songs, 2))])
    tables = []
    for it in range(1, iterations + 1):
        test = np.sort(rng.permutation(songs)[:songs // 4])
        for s in seeds:
            predictions = {}
            for name, noise in (("mixed", noise_mixed), ("sep", noise_sep)):
                if noise is None:   # noise: a model that predicts nothing about the song
                    means = rng.uniform(0, 1, (len(test), 2))
                    stds = np.full((len(test), 2), 0.15)
                else:
                    means = truth[test, :2] + rng.normal(0, noise, (len(test), 2))
                    stds = np.sqrt(truth[test, 2:] ** 2 + noise ** 2)
                predictions[name] = np.column_stack([means, stds])
            tables.append(IterationTable(it, s, tuple(ids[k] for k in test), truth[test],
                                         predictions, (f"t{it}",)))
    train = {it: truth[[k for k in range(songs) if ids[k] not in set(t.song_ids)]]
             for it, t in ((t.iteration, t) for t in tables)}
    return evaluate.evaluate_iterations(tables, train_labels=train, model="X")


def test_skill_gate_separates_noise_from_a_model_that_learned():
    evaluation = _synthetic_evaluation(0.03, None)
    assert verdict.skill(evaluation, "mixed").learned
    sep = verdict.skill(evaluation, "sep")
    assert not sep.learned and sep.p > 0.5
    summary = report.summarize("X", evaluation)
    line = report.conclusion(summary)
    assert "did not learn" in line and "no verdict" in summary.verdict
    assert "predicts the emotion distributions better" not in line


def test_verdict_needs_both_learned_and_takes_its_direction_from_the_songs():
    evaluation = _synthetic_evaluation(0.02, 0.08, seeds=(0, 1, 2))
    summary = report.summarize("X", evaluation)
    assert all(s.learned for s in summary.skills.values())
    c = summary.comparison
    assert c.effect < 0 and c.interval[1] < 0 and c.better == "mixed"   # mixed's KL is lower
    assert set(c.seed_effects) == {0, 1, 2} and all(r < 0 for r in c.seed_effects.values())
    assert summary.verdict.startswith("mixed predicts")
    assert np.isfinite(c.nadeau_bengio_p)


def test_collapsed_models_are_named_in_the_report(tmp_path):
    evaluation = _synthetic_evaluation(0.03, 0.03, seeds=(0, 1))
    assert verdict.collapsed_models(evaluation, "mixed") == []
    dead = next(t for t in evaluation.tables if (t.seed, t.iteration) == (1, 2))
    prediction = dead.predictions["mixed"]
    prediction[:, :2] = [0.5, 0.48] + np.random.default_rng(0).normal(0, 2e-4, (len(prediction), 2))
    assert verdict.collapsed_models(evaluation, "mixed") == [(1, 2)]
    assert verdict.collapsed_models(evaluation, "sep") == []
    prediction[:, 0] += np.linspace(0, 0.02, len(prediction))   # valence varies: not collapsed
    assert verdict.collapsed_models(evaluation, "mixed") == []
    prediction[:, 0] = 0.5
    text = report.write_report(tmp_path, {"CRNN": evaluation}, {}, "t", []).read_text()
    assert ("**Collapsed models** (1 of 12: predicted means varying by less than 0.001 over "
            "their test songs") in text and "): mixed seed 1 iteration 2." in text


def test_rank_biserial_and_hodges_lehmann():
    assert verdict.rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0
    assert verdict.rank_biserial(np.array([-1.0, 2.0])) == pytest.approx((2 - 1) / 3)
    assert verdict.hodges_lehmann(np.array([0.0, 1.0, 5.0])) == pytest.approx(1.75)


def test_table_names_with_and_without_seeds(tmp_path):
    assert table_name("mixed", 3) == "mixed_iteration_3"
    assert table_name("sep", 3, seed=2) == "sep_seed_2_iteration_3"
    assert table_key("crnn_iteration_10.csv") == (None, 10)
    assert table_key("sep_seed_2_iteration_3.csv") == (2, 3)
    with pytest.raises(PredictionTableError, match="iteration_<N>"):
        table_key("model2_iteration_x.csv")


def test_seed_tables_are_averaged_per_song(paper_predictions, tmp_path):
    [table] = read_iterations([paper_predictions / "crnn_iteration_2.csv"])
    for seed, shift in ((0, 0.0), (1, 0.05)):
        predictions = {k: v + [shift, 0, 0, 0] for k, v in table.predictions.items()}
        write_prediction_table(tmp_path / f"crnn_seed_{seed}_iteration_2.csv", table.song_ids,
                               table.truth, predictions)
    out = tmp_path / "out"
    assert evaluate.main(["--predictions", str(tmp_path / "crnn_seed_*.csv"),
                          "--out", str(out)]) == 0
    tables = read_iterations(sorted(tmp_path.glob("crnn_seed_*.csv")))
    evaluation = evaluate.evaluate_iterations(tables)
    per_seed = [evaluation.kl_by_seed[s][2]["mixed"] for s in (0, 1)]
    np.testing.assert_allclose(evaluation.kl[2]["mixed"], np.mean(per_seed, axis=0))
    with open(out / "stats_seeds.csv") as f:
        assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1"]


def test_non_finite_predictions_are_errors_naming_song_and_column(paper_predictions, tmp_path,
                                                                  capsys):
    [table] = read_iterations([paper_predictions / "crnn_iteration_1.csv"])
    predictions = {k: v.copy() for k, v in table.predictions.items()}
    predictions["sep"][3, 0] = np.nan
    write_prediction_table(tmp_path / "crnn_iteration_1.csv", table.song_ids, table.truth,
                           predictions)
    assert evaluate.main(["--predictions", str(tmp_path / "crnn_iteration_1.csv"),
                          "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert f"song {table.song_ids[3]}, column sep_valence_mean" in error and "finite" in error
    assert not (tmp_path / "o" / "stats.csv").exists()


def test_a_rerun_of_the_evaluation_leaves_no_stale_files(paper_predictions, tmp_path):
    out = tmp_path / "out"
    evaluate.main(["--predictions", str(paper_predictions / "crnn_iteration_*.csv"), "--out",
                   str(out), "--baselines-from-tables"])
    assert (out / "kl_iteration_10.csv").is_file() and (out / "baselines.csv").is_file()
    evaluate.main(["--predictions", str(paper_predictions / "crnn_iteration_1.csv"), "--out",
                   str(out)])
    assert sorted(p.name for p in out.glob("kl_*.csv")) == ["kl_iteration_1.csv"]
    assert not (out / "baselines.csv").exists()


def test_pooled_r_is_read_beside_the_constant_and_beyond_the_training_mean(tmp_path):
    """Few songs, many Monte-Carlo iterations: the constant's pooled r is clearly negative, and a
    model whose prediction is that constant plus noise has an r above it (noise dilutes the
    anti-correlation) without any skill, as has a fixed value plus noise; only the partial r
    given the constant's prediction tells them from a model that learned."""
    evaluation = _synthetic_evaluation(0.03, 0.03, songs=24, iterations=12, seed=1)
    learned = verdict.correlation(evaluation, "mixed")
    assert learned.songs == 23 and learned.above_constant.all() and (learned.r > 0.9).all()
    constant = learned.r_constant
    assert (constant < -0.2).all()
    rng = np.random.default_rng(0)
    for table in evaluation.tables:                 # sep: the training mean, exactly
        table.predictions["sep"] = np.tile(evaluation.constant_means[table.iteration],
                                           (len(table.song_ids), 1))
    c = verdict.correlation(evaluation, "sep")
    np.testing.assert_allclose(c.r, constant)
    assert np.isnan(c.r_partial).all() and not c.above_constant.any()
    assert "valence r -0.58, partial undefined (it follows the training mean: not above" \
        in c.describe()
    assert c.describe().count("not above the constant") == 2
    exact = {id(t): t.predictions["sep"].copy() for t in evaluation.tables}
    draws = []
    for _ in range(20):                             # sep: the training mean plus noise
        for table in evaluation.tables:
            table.predictions["sep"] = exact[id(table)] + np.pad(
                rng.normal(0, 0.1, (len(table.song_ids), 2)), ((0, 0), (0, 2)))
        draws.append(verdict.correlation(evaluation, "sep"))
    assert (np.mean([c.r for c in draws], axis=0) > constant + 0.1).all()     # diluted
    assert (np.abs(np.mean([c.r_partial for c in draws], axis=0)) < 0.1).all()
    assert sum(c.above_constant.sum() for c in draws) <= 6    # of 40: about 5% by chance
    fixed = []
    for _ in range(20):                             # sep: 0.5 (not the training mean) plus noise
        for table in evaluation.tables:
            table.predictions["sep"] = exact[id(table)] + np.pad(
                rng.normal(0, 0.1, (len(table.song_ids), 2)), ((0, 0), (0, 2)))
            table.predictions["sep"][:, :2] += 0.5 - evaluation.constant_means[table.iteration][:2]
        fixed.append(verdict.correlation(evaluation, "sep"))
    assert (np.abs(np.mean([c.r_partial for c in fixed], axis=0)) < 0.1).all()
    assert sum(c.above_constant.sum() for c in fixed) <= 6
    c = fixed[-1]                                   # the tables as they are now
    text = report.write_report(tmp_path, {"CRNN": evaluation}, {}, "t", []).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| sep | valence_mean | ")
               and line.endswith("| **no** |"))
    assert f"| {c.r_constant[0]:+.2f} | {c.r_partial[0]:+.2f} (" in row


def test_pooled_r_yardsticks_when_the_constant_does_not_vary_or_is_unknown():
    evaluation = _synthetic_evaluation(0.03, None, seed=2)
    same = next(iter(evaluation.constant_means.values()))
    stratified = dataclasses.replace(evaluation, constant_means={
        it: same for it in evaluation.constant_means})
    c = verdict.correlation(stratified, "mixed")
    assert (c.r_constant == 0).all() and c.above_constant.all()
    np.testing.assert_allclose(c.r_partial, c.r)
    assert not verdict.correlation(stratified, "sep").above_constant.any()    # pure noise
    unknown = evaluate.evaluate_iterations(evaluation.tables)
    c = verdict.correlation(unknown, "mixed")
    assert np.isnan(c.r_constant).all() and np.isnan(c.r_partial).all()
    np.testing.assert_allclose(c.r, verdict.correlation(evaluation, "mixed").r)
    assert report._above(c, 0) == ""
    assert c.describe().count("no yardstick: training labels unknown") == 2


def test_correlations_csv_gives_r_with_its_yardsticks(paper_predictions, tmp_path):
    header = ("input,dimension,songs,r,r_low,r_high,r_constant,r_partial,r_partial_low,"
              "r_partial_high,above_constant")
    for model, above, extra in (("crnn", "1", ["--baselines-from-tables"]),
                                ("rf", "0", ["--baselines-from-tables"]), ("rf", "0", [])):
        out = tmp_path / f"{model}{len(extra)}"
        assert evaluate.main(["--predictions", str(paper_predictions / f"{model}_iteration_*.csv"),
                              "--out", str(out), *extra]) == 0
        text = (out / "correlations.csv").read_text().splitlines()
        assert text[0] == header and len(text) == 5
        rows = list(csv.DictReader(text))
        assert [(r["input"], r["dimension"]) for r in rows] == [
            (i, d) for i in ("mixed", "sep") for d in ("valence_mean", "arousal_mean")]
        assert {r["above_constant"] for r in rows} == {above}
        assert all(float(r["r_low"]) < float(r["r"]) < float(r["r_high"]) for r in rows)
        if extra:
            assert all(-0.12 < float(r["r_constant"]) < -0.08 for r in rows)
        else:                                       # no training labels: no yardstick
            assert {r["r_constant"] + r["r_partial"] for r in rows} == {""}
