"""Outputs of ``rvs-mi optimize``: evaluation, the metrics table, the summary and the plots."""
import csv
import math
import os

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from ..imageio import srgb8
from .metrics import psnr, psnr_linear, ssim

METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "loss", "train_psnr_linear", "lr", "elapsed_s", "pixels", "param_error"]


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


class MetricsLog:
    """``metrics.csv``, append-only: the header once, then one row per step, each flushed.

    :meth:`sync` makes the rows durable (called before a checkpoint that
    covers them). :meth:`resume` cuts the file back to the rows a checkpoint
    covers, which also drops a row cut mid-line by a kill.
    """

    def __init__(self, path: str, file):
        self.path, self.file = path, file
        self.writer = csv.DictWriter(file, fieldnames=METRIC_FIELDS, lineterminator="\n")

    @classmethod
    def create(cls, path: str) -> "MetricsLog":
        log = cls(path, open(path, "w", newline=""))
        log.writer.writeheader()
        log.sync()
        return log

    @classmethod
    def resume(cls, path: str, rows: int) -> tuple["MetricsLog", list]:
        """(log open for appending, the first ``rows`` rows) after truncating the file to them."""
        kept = _read_rows(path, rows)
        with open(path, "r+b") as f:
            f.truncate(kept[1])
        return cls(path, open(path, "a", newline="")), kept[0]

    def append(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def _read_rows(path: str, rows: int) -> tuple[list, int]:
    """(the header's first ``rows`` rows as dicts, the byte length of header plus those rows)."""
    if not os.path.isfile(path):
        raise UserError(f"--resume: {path} is missing (the checkpoint covers {rows} rows)")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    complete = lines[:-1]                     # the last piece has no newline: cut by a kill, or empty
    if not complete or complete[0].decode(errors="replace").split(",") != METRIC_FIELDS:
        raise UserError(f"--resume: {path} does not start with the header {','.join(METRIC_FIELDS)}")
    if len(complete) - 1 < rows:
        raise UserError(f"--resume: {path} has {len(complete) - 1} complete rows, the checkpoint covers {rows}")
    kept = complete[:rows + 1]
    parsed = list(csv.DictReader(line.decode() for line in kept))
    for n, row in enumerate(parsed):
        if None in row or None in row.values() or row["step"] != str(n):
            raise UserError(f"--resume: {path} row {n + 1} is malformed: {kept[n + 1].decode(errors='replace')!r}")
    return parsed, sum(len(line) + 1 for line in kept)


COMPARISON_VIEWS = 8      # rows of comparison.png (the first evaluation views)


def plot_run(out_dir, rows, references, initial, result, summary) -> None:
    from matplotlib.figure import Figure

    steps = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    axes[0].semilogy(steps, [float(r["loss"]) for r in rows])
    axes[0].set_xlabel("step"), axes[0].set_ylabel("loss")
    axes[1].plot(steps, [float(r["train_psnr_linear"]) for r in rows])
    axes[1].set_xlabel("step"), axes[1].set_ylabel("training-view PSNR, linear values (dB)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)

    n = min(COMPARISON_VIEWS, len(references))
    fig = Figure(figsize=(7.5, 2.6 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        for j, (title, img) in enumerate((("reference", references[i]), ("initial", initial[i]),
                                          ("result", result[i]))):
            axes[i, j].imshow(srgb8(img), interpolation="nearest")
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title)
    where = "held-out" if summary["heldout"] else "training-view"
    fig.suptitle(f"{where} PSNR {summary['psnr_initial']:.2f} -> {summary['psnr_final']:.2f} dB, SSIM "
                 f"{summary['ssim_initial']:.3f} -> {summary['ssim_final']:.3f} (8-bit sRGB)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "comparison.png"), dpi=100)
