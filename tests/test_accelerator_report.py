"""benchmarks/accelerator_report.py: the projection of the full paper experiment from measured
figures, on the H200 run's own JSON and on rows with each way of running the LSTMs."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import accelerator_report as report  # noqa: E402

RUN2 = REPO / "benchmarks" / "results" / "accelerator_h200_2026-11-27_run2.json"


def test_the_h200_runs_projection_is_recomputed_from_its_json():
    result = json.loads(RUN2.read_text())
    again = report.projection(result["crnn"], result["forests"], result["preprocess"])
    assert again["crnn_lstm"] == "scan"
    for key in ("crnn_s", "forests_20_s", "preprocessing_794_songs_s"):
        assert again[key] == pytest.approx(result["projection"][key], rel=1e-9), key
    # that run's script added CRNNs and forests; the forests now fit alongside the CRNNs
    assert again["experiment_20_forests_one_after_the_other_s"] == pytest.approx(
        result["projection"]["experiment_20_forests_s"], rel=1e-9)
    assert again["experiment_20_forests_s"] == pytest.approx(again["crnn_s"])
    # 20 CRNNs x 308 steps at the measured rates, 45 validation passes of 20 batches, 2 compiles
    assert again["crnn_s"] == pytest.approx(
        308 * 10 * (0.08212938600000541 + 0.08255) + 2 * 45 * 20 * 10 * 0.0262 + 13.9 + 5.5,
        rel=2e-3)


def _row(channels, kind, seconds, lstm, k=1):
    return {"k": k, "channels": channels, "kind": kind, "dtype": "float32", "paper": True,
            "lstm": lstm, "model_step_s": seconds, "step_s": k * seconds, "compile_s": 10.0,
            "first_call_s": 0.1, "analytic_flops_per_s": None, "xla_flops_per_s": None,
            "compiled_bytes": None}


def test_the_projection_takes_the_fastest_lstm_measured_on_both_inputs():
    rows = [_row(1, "train step", 0.08, "scan"), _row(4, "train step", 0.08, "scan"),
            _row(1, "eval forward", 0.026, "scan"),
            _row(1, "train step", 0.03, "cudnn"), _row(4, "train step", 0.03, "cudnn"),
            _row(1, "eval forward", 0.01, "cudnn"),
            _row(1, "train step", 0.01, "wavefront")]          # no sep row: not projected
    out = report.projection(rows, {"mixed_fit_s": 12.0, "sep_fit_s": 50.0},
                            {"songs_per_min": 60.0})
    assert out["crnn_lstm"] == "cudnn" and set(out["crnn_s_by_lstm"]) == {"scan", "cudnn"}
    assert out["crnn_s"] == pytest.approx(308 * 10 * 0.06 + 2 * 45 * 20 * 10 * 0.01 + 20)
    assert out["experiment_20_forests_s"] == max(out["crnn_s"], 620.0)
    assert out["experiment_20_forests_one_after_the_other_s"] == out["crnn_s"] + 620.0
    assert out["preprocessing_794_songs_s"] == pytest.approx(794.0)
    assert "lstm cudnn" in report.table({"device": {"kind": "x", "backend": "gpu", "jax": "0",
                                                    "convolutions": "xla"},
                                         "crnn": rows, "skipped": []})
