"""The run behind ``rvs-mi optimize``: set-up, initial evaluation, the steps, checkpoints, outputs."""
import csv
import json
import os
import time

import drjit as dr
import mitsuba as mi
import numpy as np
from tqdm import tqdm

from ..imageio import write_image
from ..validate.fd import versions
from .checkpoint import CHECKPOINT, json_default, load_checkpoint, save_checkpoint
from .config import Config
from .problem import Problem, resolve_keys, setup_problem  # noqa: F401  (re-exported)
from .report import METRICS, evaluate, parameter_error, plot_run, write_metrics
from .step import grid_keys, step


def make_pixel_sampler(config: Config, problem: Problem):
    """A sparse pixel sampler from ``rvs_mi.sampling`` (None for full images)."""
    smp = config.sampler
    if smp.name == "full":
        return None
    from .. import sampling
    h, w = problem.train.images[0].shape[:2]
    return sampling.make_sampler(smp.name, image_size=(w, h), n_views=len(problem.train.sensors),
                                 budget=smp.budget, beta=smp.beta, rebuild_every=smp.rebuild_every,
                                 tile=smp.tile, statistic=smp.statistic, view_choice=smp.view_choice,
                                 seed=config.optimize.seed)


def _initial_state(config: Config, problem: Problem, out_dir: str, eval_split, resume: bool) -> dict:
    """Held-out metrics before the first step (computed once; a resumed run reads them back)."""
    path = os.path.join(out_dir, "initial.json")
    if resume and os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    images, p0, s0, l0 = evaluate(problem.scene, eval_split, config.output.eval_spp)
    initial = {"psnr": p0, "ssim": s0, "psnr_linear": l0,
               "param_error": parameter_error(config.optimize.truth, problem.params)}
    with open(path, "w") as f:
        json.dump(initial, f)
    np.save(os.path.join(out_dir, "initial_images.npy"), np.stack(images))
    return initial


def _optimizer(config: Config, problem: Problem, sampler, ckpt_path: str, resume: bool):
    """(optimizer, first step): a fresh Adam, or the checkpoint's optimizer when resuming."""
    if resume:
        opt, first = load_checkpoint(ckpt_path, problem.keys, sampler)
    else:
        res0 = config.upsample.initial_resolution
        if res0:
            for key in grid_keys(problem, config.upsample.params):
                grid = problem.params[key]
                problem.params[key] = dr.resample(grid, (res0, res0, res0, grid.shape[3]), filter="linear")
            problem.params.update()
        opt, first = mi.ad.Adam(lr=config.optimize.lr, params={k: problem.params[k] for k in problem.keys}), 0
    problem.params.update(opt)
    return opt, first


def _previous_rows(metrics_path: str, first: int) -> list:
    if not os.path.isfile(metrics_path):
        return []
    with open(metrics_path) as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) < first]


def run_optimization(config: Config, out_dir: str, resume: bool = False, progress: bool = True,
                     stop_after: int | None = None) -> dict:
    """Run (or resume) the optimization described by ``config``; write outputs to ``out_dir``.

    ``stop_after`` ends the run after that step as if it had been killed there,
    without a final checkpoint (used to test ``--resume``). Returns the summary written to ``summary.json``.
    """
    os.makedirs(out_dir, exist_ok=True)
    problem = setup_problem(config)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "versions": versions(), "keys": problem.keys}, f, indent=2)
    eval_split = problem.test or problem.train
    initial = _initial_state(config, problem, out_dir, eval_split, resume)
    sampler = make_pixel_sampler(config, problem)
    ckpt_path = os.path.join(out_dir, CHECKPOINT)
    opt, first = _optimizer(config, problem, sampler, ckpt_path, resume)

    metrics_path = os.path.join(out_dir, METRICS)
    rows = _previous_rows(metrics_path, first) if resume else []
    elapsed0 = float(rows[-1]["elapsed_s"]) if rows else 0.0
    pixels = int(rows[-1]["pixels"]) if rows else 0
    steps, out_cfg = config.optimize.steps, config.output
    bar = tqdm(range(first, steps), initial=first, total=steps, desc="optimize", disable=not progress,
               dynamic_ncols=True)
    t_start = time.perf_counter()
    for i in bar:
        row = step(config, problem, opt, sampler, i)
        pixels += row["pixels"]
        rows.append({"step": i, "loss": row["loss"], "train_psnr": row["train_psnr"], "lr": row["lr"],
                     "elapsed_s": elapsed0 + time.perf_counter() - t_start, "pixels": pixels,
                     "param_error": parameter_error(config.optimize.truth, problem.params)})
        bar.set_postfix(loss=f"{row['loss']:.4g}", psnr=f"{row['train_psnr']:.2f}")
        if (out_cfg.checkpoint_every and (i + 1) % out_cfg.checkpoint_every == 0) or i == steps - 1:
            save_checkpoint(ckpt_path, i, opt, problem.keys, sampler)
            write_metrics(metrics_path, rows)
        if out_cfg.snapshot_every and (i + 1) % out_cfg.snapshot_every == 0:
            _snapshot(problem, eval_split, out_dir, i, out_cfg.eval_spp)
        if i == stop_after:
            bar.close()
            return {"stopped_after": i}
    bar.close()
    write_metrics(metrics_path, rows)
    return _finish(config, problem, eval_split, out_dir, rows, initial, pixels)


def _snapshot(problem: Problem, split, out_dir: str, i: int, spp: int) -> None:
    os.makedirs(os.path.join(out_dir, "snapshots"), exist_ok=True)
    with dr.suspend_grad():
        image = mi.render(problem.scene, sensor=split.sensors[0], spp=spp)
    write_image(os.path.join(out_dir, "snapshots", f"step_{i + 1:05d}.png"), image)


def _finish(config: Config, problem: Problem, eval_split, out_dir: str, rows, initial, pixels) -> dict:
    """Final evaluation, result images, ``summary.json``, plots and ``params.npz``."""
    images, p1, s1, l1 = evaluate(problem.scene, eval_split, config.output.eval_spp)
    for i, img in enumerate(images):
        write_image(os.path.join(out_dir, f"result_{i}.exr"), img)
    summary = {
        "heldout": problem.test is not None,
        "metrics": "PSNR and SSIM of 8-bit sRGB images; psnr_linear_* of linear values in [0, 1]",
        "psnr_initial": initial["psnr"], "psnr_final": p1,
        "ssim_initial": initial["ssim"], "ssim_final": s1,
        "psnr_linear_initial": initial["psnr_linear"], "psnr_linear_final": l1,
        "param_error_initial": initial["param_error"],
        "param_error_final": parameter_error(config.optimize.truth, problem.params),
        "steps": config.optimize.steps, "time_s": float(rows[-1]["elapsed_s"]) if rows else 0.0,
        "pixels_rendered": pixels, "keys": problem.keys, "seed": config.optimize.seed,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=json_default)
    initial_images = np.load(os.path.join(out_dir, "initial_images.npy"))
    plot_run(out_dir, rows, eval_split.images, initial_images, images, summary)
    np.savez(os.path.join(out_dir, "params.npz"),
             **{k.replace("/", "_"): np.array(problem.params[k]) for k in problem.keys})
    return summary
