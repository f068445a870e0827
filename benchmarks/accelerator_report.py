"""The report of ``benchmarks/accelerator.py``: its short table and its projection of the full
paper experiment, from its JSON (pure functions of the measured figures).

    python benchmarks/accelerator_report.py OUT/accelerator.json [...]

prints each file's table, its projection recomputed by this version (e.g. for the runs in
benchmarks/results/, made before the projection knew how the LSTMs ran: their rows count as
``scan``) and writes nothing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mer_jax.lstm import IMPLEMENTATIONS  # noqa: E402

# PMEmo's 794 songs, 159 tested per iteration; per model 77 steps x 4 epochs, a validation pass
# every 7 steps (configs/paper.py's docstring)
PAPER_SONGS, PAPER_TEST, STEPS_PER_EPOCH, EPOCHS, EVAL_EVERY = 794, 159, 77, 4, 7


def eval_seconds(row: dict) -> float:
    """Seconds one model takes to evaluate a test set of PAPER_TEST songs in calls of the row's
    batch (rows of runs made before the batch was recorded: the paper's 8)."""
    return -(-PAPER_TEST // row.get("batch", 8)) * row["model_step_s"]


def crnn_projection(rows: list[dict], lstms: str) -> dict | None:
    """The 20 paper CRNNs' seconds with the LSTMs run as ``lstms``: per input, 10 models at the
    fastest measured per-model rate of any K (float32, paper topology), their validation passes
    and final predictions at the fastest measured evaluation batch (TrainConfig.eval_batch_size),
    beside the validation passes' share and the CRNN seconds with one pass an epoch instead
    (``--set eval_every=77``); None unless both inputs' train steps were measured that way."""
    def measured(channels, kind):
        return [r for r in rows if r["channels"] == channels and r["kind"] == kind
                and r["dtype"] == "float32" and r.get("paper") and r.get("lstm", "scan") == lstms]

    def best(channels, kind, cost=lambda r: r["model_step_s"]):
        hits = measured(channels, kind)
        return min(hits, key=cost) if hits else None
    mixed, sep = best(1, "train step"), best(4, "train step")
    forward = best(1, "eval forward", eval_seconds)
    if not (mixed and sep):
        return None
    steps_total = STEPS_PER_EPOCH * EPOCHS
    evals = steps_total // EVAL_EVERY + 1                 # + the final predictions
    eval_s = evals * 10 * (eval_seconds(forward) if forward else 0.0)
    batch = forward.get("batch", 8) if forward else None
    crnn_s = (steps_total * 10 * (mixed["model_step_s"] + sep["model_step_s"]) + 2 * eval_s
              + mixed["compile_s"] + sep["compile_s"])
    # the validation passes only draw the loss curves (Figures 2-3): once an epoch instead,
    # --set eval_every=STEPS_PER_EPOCH, leaves EPOCHS passes + the final predictions
    per_epoch = 2 * eval_s * (EPOCHS + 1) / evals
    return {"crnn_s": crnn_s, "validation_s": 2 * eval_s,
            "crnn_s_eval_every_epoch": crnn_s - 2 * eval_s + per_epoch,
            "eval_batch": batch,
            "crnn_detail": (f"LSTMs {lstms}: 2 inputs x 10 models x {steps_total} steps at "
                            f"{mixed['model_step_s']:.4f} s (mixed, K={mixed['k']}) and "
                            f"{sep['model_step_s']:.4f} s (sep, K={sep['k']}) per model-step; "
                            f"{evals} validation passes of {PAPER_TEST} songs"
                            + (f" in {-(-PAPER_TEST // batch)} calls of {batch} at "
                               f"{forward['model_step_s']:.4f} s (K={forward['k']}; "
                               f"eval_batch_size={batch})" if forward else " (not measured)"))}


def projection(rows: list[dict], forest: dict | None, rate: dict | None) -> dict:
    """The full paper experiment on PMEmo from the measured figures (seconds), its CRNN part
    with the fastest measured way of running the LSTMs (each one's beside it)."""
    out = {}
    by_lstm = {name: crnn_projection(rows, name) for name in IMPLEMENTATIONS}
    by_lstm = {name: value for name, value in by_lstm.items() if value}
    if by_lstm:
        fastest = min(by_lstm, key=lambda name: by_lstm[name]["crnn_s"])
        out.update(by_lstm[fastest], crnn_lstm=fastest,
                   crnn_s_by_lstm={name: v["crnn_s"] for name, v in by_lstm.items()})
    if forest:
        out["forests_20_s"] = 10 * (forest["mixed_fit_s"] + forest["sep_fit_s"])
        out["forests_40_s"] = 2 * out["forests_20_s"]
    if "crnn_s" in out and forest:
        # the forests fit in a CPU process while the CRNNs train (pipelines.experiment's default
        # on an accelerator): the longer of the two; one after the other: their sum
        for n in (20, 40):
            out[f"experiment_{n}_forests_s"] = max(out["crnn_s"], out[f"forests_{n}_s"])
            out[f"experiment_{n}_forests_one_after_the_other_s"] = (out["crnn_s"]
                                                                    + out[f"forests_{n}_s"])
    if rate:
        out["preprocessing_794_songs_s"] = 60 * PAPER_SONGS / rate["songs_per_min"]
    return out


def _cell(value, spec: str, unit: str = "") -> str:
    """A table cell: ``value`` formatted by ``spec``, or "–" where nothing was measured."""
    return "–" if value is None else f"{value:{spec}}{unit}"


def table(result: dict) -> str:
    device, peak = result["device"], result.get("peaks", {})
    lines = [f"{device['kind']} ({device['backend']}, jax {device['jax']}), convolutions: "
             f"{device['convolutions']}; peaks TFLOP/s: "
             + (", ".join(f"{k} {v / 1e12:.3g}" for k, v in peak.items()) or "not measured"),
             "| config | K | C | dtype | kind | compile s | first call s | s/step | s/model-step | "
             "x vs K=1 | TFLOP/s | % of peak | compiled GB |", "|" + "---|" * 13]
    def same(r):
        return r["paper"], r["channels"], r["dtype"], r["kind"], r.get("lstm"), r.get("batch", 8)
    base = {same(r): r["model_step_s"] for r in result.get("crnn", []) if r["k"] == 1}
    for r in sorted(result.get("crnn", []), key=lambda r: (not r["paper"], r["kind"], r["dtype"],
                                                            r["channels"], r["k"])):
        one = base.get(same(r))
        rate = r["analytic_flops_per_s"] or r["xla_flops_per_s"] or None
        ref = peak.get("bf16" if r["dtype"] == "bfloat16" else "f32")
        looped = (" (convs looped)" if r["k"] > 1 and r.get("vmap_conv") == "loop" else "") + (
            f" lstm {r['lstm']}" if r.get("lstm", "scan") != "scan" else "") + (
            f" batch {r['batch']}" if r.get("batch", 8) != 8 else "")
        lines.append(f"| {'paper' if r['paper'] else 'other'} | {r['k']} | {r['channels']} | "
                     f"{r['dtype']} | {r['kind']}{looped} | {r['compile_s']:.1f} | "
                     f"{r['first_call_s']:.1f} | {r['step_s']:.4f} | {r['model_step_s']:.4f} | "
                     f"{_cell(one / r['model_step_s'] if one else None, '.2f')} | "
                     f"{_cell(rate / 1e12 if rate else None, '.1f')} | "
                     f"{_cell(100 * rate / ref if rate and ref else None, '.0f', '%')} | "
                     f"{(r['compiled_bytes'] or 0) / 1e9:.1f} |")
    if "lstm" in result:
        lines.append("paper LSTMs alone, forward + backward s: " + ", ".join(
            f"{k} {v:.4f}" for k, v in result["lstm"]["seconds"].items()))
    for key in ("auto_chunk", "separation", "preprocess", "forests", "train", "projection"):
        if key in result:
            lines.append(f"{key}: " + ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in result[key].items() if k not in ("store", "stderr_tail")))
    for line in result.get("errors", []):
        lines.append(f"error: {line[:300]}")
    if result["skipped"]:
        lines.append(f"skipped (over budget, or as noted): {', '.join(result['skipped'])}")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        for row in result.get("crnn", []):       # files of earlier versions of the script
            row.setdefault("paper", result["device"].get("config", "paper") == "paper")
            row.setdefault("lstm", "scan")
        result["projection"] = projection(result.get("crnn", []), result.get("forests"),
                                          result.get("preprocess"))
        print(f"== {path}\n{table(result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
