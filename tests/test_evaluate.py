import csv

import numpy as np
import pytest

from mer_jax import evaluate, stats
from mer_jax.predictions import read_iterations, write_prediction_table

STATS_HEADER = "iteration,E_mixed,E_sep,M_mixed,M_sep,W_mixed_sep"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("model, table", [("crnn", "paper_table1_crnn.csv"),
                                          ("rf", "paper_table2_rf.csv")])
def test_reproduces_the_papers_tables(paper_predictions, tmp_path, model, table, capsys):
    out = tmp_path / model
    code = evaluate.main(["--predictions", str(paper_predictions / f"{model}_iteration_*.csv"),
                          "--out", str(out), "--median", "paper"])
    assert code == 0
    assert (out / "stats.csv").read_text().splitlines()[0] == STATS_HEADER
    ours, paper = _rows(out / "stats.csv"), _rows(paper_predictions / table)
    assert [r["iteration"] for r in ours] == [str(i) for i in range(1, 11)]
    for mine, theirs in zip(ours, paper):
        for key in STATS_HEADER.split(",")[1:]:
            assert round(float(mine[key]), 3) == pytest.approx(float(theirs[key]), abs=1e-9), \
                (model, mine["iteration"], key)
    for n in range(1, 11):
        kl = _rows(out / f"kl_iteration_{n}.csv")
        assert list(kl[0]) == ["song_id", "kl_mixed", "kl_sep"] and len(kl) == 154
    assert (out / "kl_histograms.png").stat().st_size > 10_000
    metrics = _rows(out / "metrics.csv")
    assert {(m["input"], m["dimension"]) for m in metrics} >= {
        ("mixed", "valence_mean"), ("mixed", "arousal_mean"), ("sep", "valence_mean")}
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {out}"


def test_true_median_is_the_default(paper_predictions, tmp_path):
    evaluate.main(["--predictions", str(paper_predictions / "crnn_iteration_1.csv"),
                   "--out", str(tmp_path)])
    row = _rows(tmp_path / "stats.csv")[0]
    assert float(row["M_mixed"]) == pytest.approx(0.5229, abs=5e-5)  # the paper printed 0.526


def test_median_conventions():
    values = np.array([4.0, 1.0, 3.0, 2.0])
    assert stats.median(values) == 2.5
    assert stats.median(values, "paper") == 3.0
    assert stats.median(values[:3], "paper") == stats.median(values[:3]) == 3.0


def test_split_tables_per_input_equal_the_combined_table(paper_predictions, tmp_path):
    [table] = read_iterations([paper_predictions / "crnn_iteration_4.csv"])
    order = np.random.default_rng(0).permutation(len(table.song_ids))
    ids = [table.song_ids[k] for k in order]
    write_prediction_table(tmp_path / "p" / "mixed_iteration_4.csv", table.song_ids, table.truth,
                           {"mixed": table.predictions["mixed"]})
    write_prediction_table(tmp_path / "p" / "sep_iteration_4.csv", ids, table.truth[order],
                           {"sep": table.predictions["sep"][order]})
    evaluate.main(["--predictions", str(tmp_path / "p" / "*_iteration_*.csv"),
                   "--out", str(tmp_path / "split")])
    evaluate.main(["--predictions", str(paper_predictions / "crnn_iteration_4.csv"),
                   "--out", str(tmp_path / "combined")])
    split, combined = _rows(tmp_path / "split" / "stats.csv"), _rows(tmp_path / "combined" / "stats.csv")
    assert split[0]["iteration"] == "4"
    for key in STATS_HEADER.split(",")[1:]:
        assert float(split[0][key]) == pytest.approx(float(combined[0][key]), rel=1e-5)


def test_single_input_tables_leave_w_empty(paper_predictions, tmp_path):
    [table] = read_iterations([paper_predictions / "rf_iteration_2.csv"])
    write_prediction_table(tmp_path / "mixed_iteration_2.csv", table.song_ids, table.truth,
                           {"mixed": table.predictions["mixed"]})
    evaluate.main(["--predictions", str(tmp_path / "mixed_iteration_2.csv"), "--out", str(tmp_path / "o")])
    row = _rows(tmp_path / "o" / "stats.csv")[0]
    assert row["E_sep"] == row["W_mixed_sep"] == "" and float(row["E_mixed"]) > 0


def test_negative_predicted_std_is_reported_with_file_and_song(paper_predictions, tmp_path, capsys):
    [table] = read_iterations([paper_predictions / "crnn_iteration_1.csv"])
    sep = table.predictions["sep"].copy()
    sep[5, 3] = -0.01
    path = tmp_path / "crnn_iteration_1.csv"
    write_prediction_table(path, table.song_ids, table.truth, {"mixed": table.predictions["mixed"], "sep": sep})
    assert evaluate.main(["--predictions", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'sep'" in err and table.song_ids[5] in err
    assert evaluate.main(["--predictions", str(path), "--out", str(tmp_path / "o"),
                          "--min-std", "0.01"]) == 0


def test_missing_columns_and_no_match_are_errors(tmp_path, capsys):
    bad = tmp_path / "x_iteration_1.csv"
    bad.write_text("song_id,gt_valence_mean\n1,0.5\n")
    assert evaluate.main(["--predictions", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing columns" in capsys.readouterr().err
    assert evaluate.main(["--predictions", str(tmp_path / "none_*.csv"), "--out", str(tmp_path)]) == 2


def test_holm_adjustment():
    adjusted = stats.holm([0.01, 0.04, np.nan, 0.03])
    np.testing.assert_allclose(adjusted[[0, 1, 3]], [0.03, 0.06, 0.06])
    assert np.isnan(adjusted[2])


def test_reference_pairs_our_songs_with_the_authors(paper_predictions, tmp_path, capsys):
    """Tables of 40 of the authors' CRNN test songs in iterations 1-2 whose mixed predictions
    are the authors' sep ones: reference.csv pairs them with the authors' mixed predictions, song
    by song (KL by the closed form here, Wilcoxon by scipy), beside the constant and
    calibrated-constant baselines fitted on the authors' other labelled songs, with each side's
    skill gate; a song the authors did not test in that iteration, or another ground truth, is
    refused."""
    from scipy.stats import wilcoxon
    from mer_jax import reference

    def kl(truth, q):
        mp, sp, mq, sq = truth[:, :2], truth[:, 2:], q[:, :2], q[:, 2:]
        return np.sum(np.log(sq / sp) + (sp ** 2 + (mp - mq) ** 2) / (2 * sq ** 2) - 0.5, axis=1)

    labelled = {}
    for table in read_iterations(sorted(paper_predictions.glob("crnn_iteration_*.csv"))):
        labelled.update(zip(table.song_ids, table.truth))
    tables = read_iterations(sorted(paper_predictions.glob("crnn_iteration_[12].csv")))
    expected, pooled = {}, {}
    for table in tables:
        keep = slice(10, 50)
        ids, truth = table.song_ids[keep], table.truth[keep]
        sep, mixed = table.predictions["sep"][keep], table.predictions["mixed"][keep]
        write_prediction_table(tmp_path / "ours" / f"mixed_iteration_{table.iteration}.csv", ids,
                               truth, {"mixed": sep})
        train = np.array([v for song, v in labelled.items() if song not in table.song_ids])
        means, sigmas = train[:, :2].mean(0), train[:, 2:]
        constant = np.tile(train.mean(0), (len(ids), 1))
        calibrated = np.tile(np.r_[means, np.sqrt((sigmas ** 2).mean(0) + train[:, :2].var(0))],
                             (len(ids), 1))
        expected[table.iteration] = (kl(truth, sep), kl(truth, mixed), kl(truth, constant),
                                     kl(truth, calibrated))
        for song, *values in zip(ids, *expected[table.iteration]):
            pooled.setdefault(song, []).append(values)
    args = ["--predictions", str(tmp_path / "ours" / "*.csv"),
            "--reference", str(paper_predictions / "crnn_iteration_*.csv")]
    assert reference.main([*args, "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == str(tmp_path / "cmp" / "reference.csv")
    rows = _rows(tmp_path / "cmp" / "reference.csv")
    assert list(rows[0]) == list(reference.HEADER)
    assert [(r["iteration"], r["input"], r["songs"]) for r in rows] == [
        ("1", "mixed", "40"), ("2", "mixed", "40"), ("pooled", "mixed", str(len(pooled)))]
    means = np.array([np.mean(v, axis=0) for v in pooled.values()])
    for row, (ours, theirs, constant, calibrated) in zip(rows, [*expected.values(), means.T]):
        assert float(row["E_ours"]) == pytest.approx(ours.mean(), rel=1e-5)
        assert float(row["E_reference"]) == pytest.approx(theirs.mean(), rel=1e-5)
        assert float(row["M_reference"]) == pytest.approx(np.median(theirs), rel=1e-5)
        assert float(row["W_ours_reference"]) == pytest.approx(wilcoxon(ours, theirs).pvalue,
                                                               rel=1e-4)
        assert float(row["E_constant"]) == pytest.approx(constant.mean(), rel=1e-5)
        assert float(row["E_calibrated"]) == pytest.approx(calibrated.mean(), rel=1e-5)
        for side, values in (("ours", ours), ("reference", theirs)):
            assert float(row[f"P_{side}_calibrated"]) == pytest.approx(
                wilcoxon(values, calibrated, alternative="less").pvalue, rel=1e-4)
    p = [float(rows[2][f"P_{side}_calibrated"]) for side in ("ours", "reference")]
    said = ["learned" if value < 0.05 else "did not learn" for value in p]
    assert (f"mixed: ours {said[0]} (p = {p[0]:.3g}), reference {said[1]} (p = {p[1]:.3g})"
            in out)
    assert [r["seeds"] for r in rows] == ["1"] * 3
    assert rows[2]["E_ours_seed_min"] == rows[2]["E_ours_seed_max"] == rows[2]["E_ours"]
    # two seeds (the authors' sep and mixed predictions as ours): E is over the songs' seed means,
    # the seed columns each seed's own E
    for table in tables:
        for seed, name in enumerate(("sep", "mixed")):
            write_prediction_table(tmp_path / "seeds" / f"mixed_seed_{seed}_iteration_"
                                   f"{table.iteration}.csv", table.song_ids[10:50],
                                   table.truth[10:50], {"mixed": table.predictions[name][10:50]})
    assert reference.main(["--predictions", str(tmp_path / "seeds" / "*.csv"), *args[2:],
                           "--out", str(tmp_path / "cmp2")]) == 0
    rows = _rows(tmp_path / "cmp2" / "reference.csv")
    for row, (seed0, seed1) in zip(rows, [*(v[:2] for v in expected.values()), means.T[:2]]):
        assert row["seeds"] == "2"
        assert float(row["E_ours"]) == pytest.approx((seed0 + seed1).mean() / 2, rel=1e-5)
        assert float(row["E_ours_seed_min"]) == pytest.approx(min(seed0.mean(), seed1.mean()),
                                                              rel=1e-5)
        assert float(row["E_ours_seed_max"]) == pytest.approx(max(seed0.mean(), seed1.mean()),
                                                              rel=1e-5)
    other = read_iterations([paper_predictions / "crnn_iteration_3.csv"])[0]
    write_prediction_table(tmp_path / "ours" / "mixed_iteration_1.csv", other.song_ids[:5],
                           other.truth[:5], {"mixed": other.predictions["mixed"][:5]})
    assert reference.main([*args, "--out", str(tmp_path / "bad")]) == 2
    assert "iteration 1: our test songs" in capsys.readouterr().err
    table = tables[0]
    write_prediction_table(tmp_path / "ours" / "mixed_iteration_1.csv", table.song_ids,
                           table.truth + 0.01, {"mixed": table.predictions["mixed"]})
    assert reference.main([*args, "--out", str(tmp_path / "bad")]) == 2
    assert "differs from the reference's" in capsys.readouterr().err
