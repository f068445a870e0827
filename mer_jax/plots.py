"""Figures: the paper's Figure 4 (per-iteration KL histograms, mixed vs sep, 30 bins)."""
from __future__ import annotations

import json
import math
import os

import numpy as np

COLORS = {"mixed": "tab:blue", "sep": "tab:orange"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)  # file output only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def kl_histograms(kl_by_iteration: dict[int, dict[str, np.ndarray]], path: os.PathLike | str,
                  bins: int = 30, title: str | None = None, columns: int = 5) -> None:
    """One panel per iteration; each panel overlays the inputs' KL histograms on a shared
    ``bins``-bin grid over that iteration's KL range (the paper divides each domain into 30)."""
    plt = _pyplot()
    iterations = sorted(kl_by_iteration)
    cols = min(columns, len(iterations))
    rows = math.ceil(len(iterations) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(iterations):]:
        ax.set_visible(False)
    for ax, iteration in zip(axes.flat, iterations):
        kl = kl_by_iteration[iteration]
        finite = np.concatenate([v[np.isfinite(v)] for v in kl.values()])
        edges = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=bins)
        for name, values in kl.items():
            ax.hist(values[np.isfinite(values)], bins=edges, alpha=0.6, label=name,
                    color=COLORS.get(name))
        ax.set_title(f"iteration {iteration}", fontsize=9)
        ax.set_xlabel("KL divergence", fontsize=8)
        ax.set_ylabel("songs", fontsize=8)
        ax.tick_params(labelsize=7)
    # a fixed corner: loc="best" searches every bar, slow and warned about on a loaded machine
    axes.flat[0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss_curves(metrics_jsonl: os.PathLike | str, path: os.PathLike | str,
                title: str | None = None) -> None:
    """The paper's Figures 2-3: training and validation loss, averaged over the models
    (iterations) of a metrics log written by the trainer."""
    plt = _pyplot()
    series: dict[str, dict[int, float]] = {"train": {}, "val": {}}
    with open(metrics_jsonl) as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") in series:
                series[row["kind"]][row["step"]] = float(np.mean(row["loss"]))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for kind, color in (("train", "tab:blue"), ("val", "tab:orange")):
        if series[kind]:
            steps = sorted(series[kind])
            ax.plot(steps, [series[kind][s] for s in steps], label=f"{kind} loss", color=color,
                    marker="o" if kind == "val" else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")           # the losses fall from the upper left
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
