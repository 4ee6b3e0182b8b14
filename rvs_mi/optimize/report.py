"""Outputs of ``rvs-mi optimize``: evaluation, the metrics table, the summary and the plots."""
import csv
import math
import os

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from .metrics import psnr, psnr_linear, ssim

METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "loss", "train_psnr", "lr", "elapsed_s", "pixels", "param_error"]


def evaluate(scene, split, spp: int, seed: int = 12345):
    """Render every view of ``split``: (images, mean sRGB PSNR, mean SSIM, mean linear PSNR)."""
    images = []
    with dr.suspend_grad():
        for i, sensor in enumerate(split.sensors):
            images.append(np.array(mi.render(scene, sensor=sensor, spp=spp, seed=seed + i),
                                   dtype=np.float32)[..., :3])
    pairs = list(zip(images, split.images))
    return (images, float(np.mean([psnr(a, b) for a, b in pairs])),
            float(np.mean([ssim(a, b) for a, b in pairs])), float(np.mean([psnr_linear(a, b) for a, b in pairs])))


def parameter_error(truth: dict, params):
    """Relative L2 error ‖θ − θ*‖/‖θ*‖ of the parameters that have a ``truth`` value; None if none."""
    if not truth:
        return None
    num = den = 0.0
    for key, value in truth.items():
        if key not in params.keys():
            raise UserError(f"config optimize.truth: {key!r} is not a parameter of the scene")
        current = np.array(params[key], dtype=np.float64).ravel()
        target = np.broadcast_to(np.asarray(value, dtype=np.float64).ravel(), current.shape)
        num += float(np.sum((current - target) ** 2))
        den += float(np.sum(target ** 2))
    return math.sqrt(num / max(den, 1e-30))


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
