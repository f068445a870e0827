"""benchmarks/accelerator_report.py: the projection of the full paper experiment from measured
figures, on the H200 run's own JSON and on rows with each way of running the LSTMs; and the
device script's CRNN plan and "auto" section, which only a device run would otherwise reach."""
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


def _row(channels, kind, seconds, lstm, k=1, batch=8):
    return {"k": k, "channels": channels, "batch": batch, "kind": kind, "dtype": "float32",
            "paper": True,
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


def test_validation_is_projected_at_the_fastest_evaluation_batch_per_song():
    """159 test songs: 20 calls of 8 at 0.026 s (0.52 s) against 4 calls of 40 at 0.05 s (0.2 s)
    and one of 160 at 0.3 s; the projection takes 40 and says so (eval_batch_size)."""
    rows = [_row(1, "train step", 0.08, "scan"), _row(4, "train step", 0.08, "scan"),
            _row(1, "eval forward", 0.026, "scan"), _row(1, "eval forward", 0.05, "scan", batch=40),
            _row(1, "eval forward", 0.3, "scan", batch=160)]
    out = report.projection(rows, None, None)
    assert out["eval_batch"] == 40 and "eval_batch_size=40" in out["crnn_detail"]
    assert out["crnn_s"] == pytest.approx(308 * 10 * 0.16 + 2 * 45 * 10 * 4 * 0.05 + 20)
    assert out["validation_s"] == pytest.approx(2 * 45 * 10 * 4 * 0.05)
    # --set eval_every=77: 4 passes and the final predictions instead of 45
    assert out["crnn_s_eval_every_epoch"] == pytest.approx(308 * 10 * 0.16 + 2 * 5 * 10 * 4 * 0.05
                                                           + 20)
    assert "eval forward batch 40" in report.table({
        "device": {"kind": "x", "backend": "gpu", "jax": "0", "convolutions": "xla"},
        "crnn": rows, "skipped": []})


def test_the_device_scripts_crnn_plan_and_auto_chunk_run_here():
    import accelerator_crnn
    from conftest import TINY_OVERRIDES
    from mer_jax.training.config import apply_overrides, load_config
    plan = accelerator_crnn.crnn_plan(["small:10:4:float32:eval:b40:loop:wavefront",
                                       "paper:1:1:bfloat16"])
    assert [(k, c, evaluate, conv, lstm, cfg.batch_size, cfg.model.compute_dtype)
            for cfg, k, c, evaluate, conv, lstm in plan] == [
        (10, 4, True, "loop", "wavefront", 40, "float32"),
        (1, 1, False, "grouped", "scan", 8, "bfloat16")]
    for bad in ("small:1:1:float32:b0", "small:1:1:float32:b8:b40", "small:1:1:float32:fast"):
        with pytest.raises(ValueError, match="unknown flags"):
            accelerator_crnn.crnn_plan([bad])
    out = accelerator_crnn.auto_chunk(apply_overrides(load_config("small"), TINY_OVERRIDES), 3)
    assert out["models_in_parallel"] == 1 and out["per_model_bytes"] > 0   # "auto" on CPU: 1


def test_the_device_script_stops_at_once_when_the_audio_stack_does_not_import(monkeypatch):
    import accelerator
    accelerator.preflight([])                               # all three import here
    monkeypatch.setitem(sys.modules, "opensmile", None)     # `import opensmile` now fails
    with pytest.raises(SystemExit, match="opensmile does not import .*ModuleNotFoundError"):
        accelerator.preflight(["peaks"])
    accelerator.preflight(["separation", "preprocess"])   # nothing needs it then (nor train)


def test_the_table_says_what_was_not_measured():
    """Run 2 skipped the peaks: its table says so and leaves their share blank, never nan."""
    text = report.table(json.loads(RUN2.read_text()))
    assert "peaks TFLOP/s: not measured" in text and "| – |" in text and "nan" not in text
