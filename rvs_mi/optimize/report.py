"""Outputs of ``rvs-mi optimize``: the metrics table and the plots."""
from __future__ import annotations

import csv
import os

import numpy as np

METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "loss", "train_psnr", "lr", "elapsed_s", "pixels", "param_error"]


def write_metrics(path: str, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot_run(out_dir, rows, references, initial, result, summary) -> None:
    from matplotlib.figure import Figure

    steps = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    axes[0].semilogy(steps, [float(r["loss"]) for r in rows])
    axes[0].set_xlabel("step"), axes[0].set_ylabel("loss")
    axes[1].plot(steps, [float(r["train_psnr"]) for r in rows])
    axes[1].set_xlabel("step"), axes[1].set_ylabel("training PSNR (dB)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)

    n = min(3, len(references))
    fig = Figure(figsize=(7.5, 2.6 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        for j, (title, img) in enumerate((("reference", references[i]), ("initial", initial[i]),
                                          ("result", result[i]))):
            axes[i, j].imshow(np.clip(img, 0, 1) ** (1 / 2.2), interpolation="nearest")
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title)
    fig.suptitle(f"held-out PSNR {summary['psnr_initial']:.2f} -> {summary['psnr_final']:.2f} dB",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "comparison.png"), dpi=100)
