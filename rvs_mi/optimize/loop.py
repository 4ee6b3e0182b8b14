"""The inverse-rendering loop behind ``rvs-mi optimize``.

One step: choose a view (and pixels, with a sparse pixel sampler), render with
the scene's integrator, image loss + regularizers, ``dr.backward``, Adam step,
clamp, ``params.update``. Every random choice is a function of (seed, step),
so a run resumed from a checkpoint ends where an uninterrupted one does.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import time

import numpy as np

from ..errors import UserError
from .dataset import Split
from .problem import Problem, resolve_keys, setup_problem  # noqa: F401  (resolve_keys: public)

from .checkpoint import CHECKPOINT, _json_default, load_checkpoint, save_checkpoint
from .report import METRICS, plot_run, write_metrics


# --------------------------------------------------------------------------- pieces

def learning_rate(config: dict, step: int) -> float:
    opt = config["optimize"]
    lr, final, steps = opt["lr"], opt["lr_final"], max(opt["steps"] - 1, 1)
    frac = min(step / steps, 1.0)
    if opt["lr_schedule"] == "cosine":
        return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * frac)))
    if opt["lr_schedule"] == "exponential":
        return lr * final ** frac
    return lr


def _voxel_size(problem, shape) -> tuple:
    """World-space voxel size (x, y, z) of an SDF grid of ``shape`` (Z, Y, X, C)."""
    source = getattr(problem.scene.integrator(), "source", None)
    extent = getattr(source, "extent", None)
    if extent is None:
        raise UserError("regularizers.redistance_every needs an SDF integrator with a grid SDF")
    return tuple(float(extent[a]) / shape[2 - a] for a in range(3))


def _matches(patterns, key) -> bool:
    return any(p == key or re.fullmatch(p, key) for p in patterns)


def _grid_keys(problem, patterns, keys=None):
    """Optimized keys that hold 3-D grids (Z×Y×X×C tensors), filtered by ``patterns``."""
    keys = problem.keys if keys is None else keys
    return [k for k in keys if getattr(problem.params[k], "ndim", 0) == 4
            and (not patterns or _matches(patterns, k))]


def regularization(config: dict, problem: Problem, opt, step: int = 0):
    from .losses import laplacian, total_variation
    reg = config["regularizers"]
    total = 0.0
    if reg["eikonal"] > 0:
        from ..sdf.neural import NeuralSDF, eikonal_loss
        source = getattr(problem.scene.integrator(), "source", None)
        if not isinstance(source, NeuralSDF):
            raise UserError("regularizers.eikonal needs a neural SDF ([scene] neural_sdf = {...})")
        seed = (config["optimize"]["seed"] * 1000003 + step) & 0x7FFFFFFF
        total = total + reg["eikonal"] * eikonal_loss(source, reg["eikonal_points"], seed)
    for key in _grid_keys(problem, reg["params"]):
        if reg["tv"] > 0:
            total = total + reg["tv"] * total_variation(opt[key])
        if reg["laplacian"] > 0:
            total = total + reg["laplacian"] * laplacian(opt[key])
    return total


def _none_if_nan(value: float):
    return None if value != value else value


def parameter_error(config: dict, problem: Problem) -> float:
    """Relative L2 error of the parameters that have a ``truth`` value, NaN if none."""
    truth = config["optimize"]["truth"]
    if not truth:
        return float("nan")
    num = den = 0.0
    for key, value in truth.items():
        if key not in problem.params.keys():
            raise UserError(f"config optimize.truth: {key!r} is not a parameter of the scene")
        current = np.array(problem.params[key], dtype=np.float64).ravel()
        target = np.broadcast_to(np.asarray(value, dtype=np.float64).ravel(), current.shape)
        num += float(np.sum((current - target) ** 2))
        den += float(np.sum(target ** 2))
    return math.sqrt(num / max(den, 1e-30))


def evaluate(problem: Problem, split: Split, spp: int, seed: int = 12345):
    """Render every view of ``split``: (images, mean PSNR, mean SSIM)."""
    import drjit as dr
    import mitsuba as mi
    from .metrics import psnr, ssim
    images = []
    with dr.suspend_grad():
        for i, sensor in enumerate(split.sensors):
            images.append(np.array(mi.render(problem.scene, sensor=sensor, spp=spp, seed=seed + i),
                                   dtype=np.float32)[..., :3])
    p = float(np.mean([psnr(a, b) for a, b in zip(images, split.images)]))
    s = float(np.mean([ssim(a, b) for a, b in zip(images, split.images)]))
    return images, p, s


# --------------------------------------------------------------------------- the loop

def make_pixel_sampler(config: dict, problem: Problem):
    """A sparse pixel sampler from ``rvs_mi.sampling`` (None for full images)."""
    smp = config["sampler"]
    if smp["name"] == "full":
        return None
    from .. import sampling
    h, w = problem.train.images[0].shape[:2]
    return sampling.make_sampler(smp["name"], image_size=(w, h), n_views=len(problem.train.sensors),
                                 budget=smp["budget"], beta=smp["beta"], rebuild_every=smp["rebuild_every"],
                                 tile=smp["tile"], statistic=smp["statistic"],
                                 view_choice=smp["view_choice"], seed=config["optimize"]["seed"])


def run_optimization(config: dict, out_dir: str, resume: bool = False, progress: bool = True,
                     stop_after: int | None = None) -> dict:
    """Run (or resume) the optimization described by ``config``; write outputs to ``out_dir``.

    ``stop_after`` ends the run after that step as if it had been killed there,
    without a final checkpoint (used to test ``--resume``). Returns the summary written to ``summary.json``.
    """
    import drjit as dr
    import mitsuba as mi
    from tqdm import tqdm

    from ..imageio import write_image
    from ..validate.fd import versions
    from .losses import image_loss
    from .metrics import psnr

    os.makedirs(out_dir, exist_ok=True)
    problem = setup_problem(config)
    opt_cfg, out_cfg = config["optimize"], config["output"]
    spp, spp_grad = opt_cfg["spp"], opt_cfg["spp_grad"] or opt_cfg["spp"]
    seed = opt_cfg["seed"]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"config": config, "versions": versions(), "keys": problem.keys}, f, indent=2)

    eval_split = problem.test or problem.train
    start_path = os.path.join(out_dir, "initial.json")
    if resume and os.path.isfile(start_path):
        with open(start_path) as f:
            initial = json.load(f)
    else:
        images, p0, s0 = evaluate(problem, eval_split, out_cfg["eval_spp"])
        initial = {"psnr": p0, "ssim": s0, "param_error": parameter_error(config, problem)}
        with open(start_path, "w") as f:
            json.dump(initial, f)
        np.save(os.path.join(out_dir, "initial_images.npy"), np.stack(images))

    res0 = config["upsample"]["initial_resolution"]
    if res0 and not resume:
        for key in _grid_keys(problem, config["upsample"]["params"]):
            grid = problem.params[key]
            problem.params[key] = dr.resample(grid, (res0, res0, res0, grid.shape[3]), filter="linear")
        problem.params.update()
    opt = mi.ad.Adam(lr=opt_cfg["lr"], params={k: problem.params[k] for k in problem.keys})
    sampler = make_pixel_sampler(config, problem)
    ckpt_path = os.path.join(out_dir, CHECKPOINT)
    first = load_checkpoint(ckpt_path, opt, problem, sampler) if resume else 0
    if not resume:
        problem.params.update(opt)

    metrics_path = os.path.join(out_dir, METRICS)
    rows = []
    if resume and os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) < first]
    elapsed0 = float(rows[-1]["elapsed_s"]) if rows else 0.0
    pixels = int(rows[-1]["pixels"]) if rows else 0
    lr_scale = opt_cfg["lr_scale"]
    clamp = opt_cfg["clamp"]
    upsample_steps = set(config["upsample"]["at_steps"])
    n_views = len(problem.train.sensors)
    reg_cfg = config["regularizers"]

    bar = tqdm(range(first, opt_cfg["steps"]), initial=first, total=opt_cfg["steps"],
               desc="optimize", disable=not progress, dynamic_ncols=True)
    t_start = time.perf_counter()
    for step in bar:
        if step in upsample_steps:
            for key in _grid_keys(problem, config["upsample"]["params"]):
                z, y, x, c = opt[key].shape
                opt[key] = dr.resample(opt[key], (2 * z, 2 * y, 2 * x, c), filter="linear")
            problem.params.update(opt)
        lr = learning_rate(config, step)
        opt.set_learning_rate(lr)
        for pattern, factor in lr_scale.items():
            opt.set_learning_rate({k: lr * float(factor) for k in problem.keys if _matches([pattern], k)})
        step_seed = (seed * 1000003 + step * 2) & 0x7FFFFFFF

        if sampler is None:
            view = int(np.random.default_rng([seed, step]).integers(n_views))
            image = mi.render(problem.scene, problem.params, sensor=problem.train.sensors[view],
                              spp=spp, spp_grad=spp_grad, seed=step_seed, seed_grad=step_seed + 1)
            loss = image_loss(image, problem.ref_train[view], opt_cfg["loss"], opt_cfg["huber_delta"],
                              opt_cfg["multiscale"])
            train_psnr = psnr(np.array(image), problem.train.images[view])
            pixels += image.shape[0] * image.shape[1]
        else:
            from .. import sampling
            batch = sampler.draw(step)
            tangent = None
            if sampler.needs_tangent:     # random projection: two more primal renders of the batch
                _, tangent = sampling.render_pixels_tangent(problem.scene, problem.params, problem.train.sensors,
                                                            batch, problem.keys, spp=spp, seed=step_seed + 7,
                                                            direction_seed=step_seed)
            values = sampling.render_pixels(problem.scene, problem.params, problem.train.sensors, batch,
                                            spp=spp, spp_grad=spp_grad, seed=step_seed)
            reference = sampling.gather_reference(problem.ref_train, batch)
            loss = sampling.weighted_loss(values, reference, batch, kind=opt_cfg["loss"],
                                          delta=opt_cfg["huber_delta"])
            sampler.observe(batch, values, reference, tangent=tangent, kind=opt_cfg["loss"],
                            delta=opt_cfg["huber_delta"])
            diff = np.array(dr.detach(values)) - np.array(reference)
            mse = float(np.mean(np.square(np.clip(diff, -1, 1))))
            train_psnr = -10 * math.log10(max(mse, 1e-12))
            pixels += sampler.pixels_per_step(batch)

        loss = loss + regularization(config, problem, opt, step)
        dr.backward(loss)
        opt.step()
        for pattern, (lo, hi) in clamp.items():
            for key in problem.keys:
                if _matches([pattern], key):
                    opt[key] = dr.clip(opt[key], lo, hi)
        every = reg_cfg["redistance_every"]
        if every and (step + 1) % every == 0:
            from ..sdf.redistance import redistance
            for key in _grid_keys(problem, reg_cfg["sdf_params"]):
                opt[key] = redistance(opt[key], _voxel_size(problem, opt[key].shape))
        problem.params.update(opt)

        elapsed = elapsed0 + time.perf_counter() - t_start
        loss_value = float(np.array(dr.detach(loss)).ravel()[0])
        rows.append({"step": step, "loss": loss_value, "train_psnr": train_psnr, "lr": lr,
                     "elapsed_s": elapsed, "pixels": pixels,
                     "param_error": parameter_error(config, problem)})
        bar.set_postfix(loss=f"{loss_value:.4g}", psnr=f"{train_psnr:.2f}")
        last = step == opt_cfg["steps"] - 1
        if (out_cfg["checkpoint_every"] and (step + 1) % out_cfg["checkpoint_every"] == 0) or last:
            save_checkpoint(ckpt_path, step, opt, problem.keys, sampler)
            write_metrics(metrics_path, rows)
        if out_cfg["snapshot_every"] and (step + 1) % out_cfg["snapshot_every"] == 0:
            os.makedirs(os.path.join(out_dir, "snapshots"), exist_ok=True)
            with dr.suspend_grad():
                snap = mi.render(problem.scene, sensor=eval_split.sensors[0], spp=out_cfg["eval_spp"])
            write_image(os.path.join(out_dir, "snapshots", f"step_{step + 1:05d}.png"), snap)
        if step == stop_after:
            bar.close()
            return {"stopped_after": step}
    bar.close()
    write_metrics(metrics_path, rows)

    images, p1, s1 = evaluate(problem, eval_split, out_cfg["eval_spp"])
    initial_images = np.load(os.path.join(out_dir, "initial_images.npy"))
    for i, img in enumerate(images):
        write_image(os.path.join(out_dir, f"result_{i}.exr"), img)
    summary = {
        "heldout": problem.test is not None,
        "psnr_initial": initial["psnr"], "psnr_final": p1,
        "ssim_initial": initial["ssim"], "ssim_final": s1,
        # null (not NaN, which is not JSON) when the config gives no truth
        "param_error_initial": _none_if_nan(initial["param_error"]),
        "param_error_final": _none_if_nan(parameter_error(config, problem)),
        "steps": opt_cfg["steps"], "time_s": rows[-1]["elapsed_s"] if rows else 0.0,
        "pixels_rendered": pixels, "keys": problem.keys, "seed": seed,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=_json_default)
    plot_run(out_dir, rows, eval_split.images, initial_images, images, summary)
    np.savez(os.path.join(out_dir, "params.npz"),
             **{k.replace("/", "_"): np.array(problem.params[k]) for k in problem.keys})
    return summary


