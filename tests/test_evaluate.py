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
