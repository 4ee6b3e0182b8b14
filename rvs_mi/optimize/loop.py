"""The run behind ``rvs-mi optimize``: set-up, initial evaluation, the steps, checkpoints, outputs."""
import contextlib
import json
import math
import os
import sys
import time

import drjit as dr
import mitsuba as mi
import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..imageio import write_image
from ..validate.fd import versions
from .checkpoint import (CHECKPOINT, atomic_write, json_default, nonfinite_keys, restore_checkpoint,
                         save_checkpoint, write_json)
from .config import SCHEMA, Config
from .export import RESULT_DIR, export_result
from .mesh_reference import geometry, geometry_summary
from .problem import Problem, resolve_keys, setup_problem  # noqa: F401  (re-exported)
from .report import METRICS, MetricsLog, evaluate, parameter_error, plot_run
from .frozen import FrozenCore, blocker
from .step import grid_keys, make_core, one_thread, step

SUMMARY = "summary.json"
#: Config keys a ``--resume`` may change: the length of the run and where/how often it writes.
#: ``output.eval_spp`` is not among them: the initial metrics were measured with it.
RESUMABLE = frozenset({"optimize.steps", "output.dir", "output.checkpoint_every", "output.snapshot_every"})


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
    images_path = os.path.join(out_dir, "initial_images.npy")
    if resume and os.path.isfile(path) and os.path.isfile(images_path):
        with open(path) as f:
            return json.load(f)
    images, p0, s0, l0 = evaluate(problem.scene, eval_split, config.output.eval_spp)
    initial = {"psnr": p0, "ssim": s0, "psnr_linear": l0,
               "param_error": parameter_error(config.optimize.truth, problem.params),
               **geometry(config, problem)}
    atomic_write(images_path, lambda f: np.save(f, np.stack(images)))
    write_json(path, initial)
    return initial


def _changed_keys(saved: dict, config: Config) -> list:
    """Config keys (section.key) whose values differ from ``saved``, except those that may change."""
    def flat(cfg):
        return {f"{s}.{k}": v for s, section in cfg.items() for k, v in section.items()}
    new = flat(json.loads(json.dumps(config.to_dict(), default=json_default)))
    old = flat(saved)
    defaults = {f"{s}.{k}": json.loads(json.dumps(v[1], default=str)) for s, section in SCHEMA.items()
                for k, v in section.items()}
    return [k for k in sorted(set(old) | set(new))
            if k not in RESUMABLE and old.get(k, defaults.get(k)) != new.get(k, defaults.get(k))]


def _saved_run(config: Config, out_dir: str) -> dict:
    """The ``config.json`` of the run in ``out_dir``; refuses a config that differs from it."""
    path = os.path.join(out_dir, "config.json")
    if not os.path.isfile(path):
        raise UserError(f"--resume: {out_dir} holds no run to resume (no config.json)")
    try:
        with open(path) as f:
            saved = json.load(f)
        changed = _changed_keys(saved["config"], config)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"--resume: unreadable {path}: {type(exc).__name__}: {exc}") from None
    if changed:
        raise UserError(f"--resume: the config differs from the run's config.json in {', '.join(changed)} "
                        f"(only {', '.join(sorted(RESUMABLE))} may change)")
    return saved


def _expected_shape(config: Config, problem: Problem, key: str, first: int) -> tuple:
    """Shape of parameter ``key`` after ``first`` steps: initial resampling and upsampling applied."""
    shape = tuple(dr.shape(problem.params[key]))
    if key not in grid_keys(problem, config.upsample.params):
        return shape
    res0 = config.upsample.initial_resolution
    z, y, x, c = (res0, res0, res0, shape[3]) if res0 else shape
    n = len({s for s in config.upsample.at_steps if s < first})
    return (z << n, y << n, x << n, c)


def _fresh_optimizer(config: Config, problem: Problem):
    res0 = config.upsample.initial_resolution
    if res0:
        for key in grid_keys(problem, config.upsample.params):
            grid = problem.params[key]
            problem.params[key] = dr.resample(grid, (res0, res0, res0, grid.shape[3]), filter="linear")
        problem.params.update()
    return mi.ad.Adam(lr=config.optimize.lr, params={k: problem.params[k] for k in problem.keys})


def _optimizer(config: Config, problem: Problem, sampler, ckpt_path: str, resume: bool):
    """(optimizer, first step, metrics rows covered): the checkpoint's when resuming from one,
    else a fresh Adam. A checkpoint whose shapes differ from the scene's is refused."""
    if resume and os.path.isfile(ckpt_path):
        opt, meta = restore_checkpoint(ckpt_path, problem.keys, sampler)
        first = int(meta["step"]) + 1
        for key in problem.keys:
            got, want = tuple(dr.shape(opt[key])), _expected_shape(config, problem, key, first)
            if got != want:
                raise UserError(f"--resume: checkpoint {ckpt_path} holds {key} of shape {got}, "
                                f"the scene's after {first} steps is {want}")
        rows = int(meta["rows"])
    else:
        opt, first, rows = _fresh_optimizer(config, problem), 0, 0
    problem.params.update(opt)
    return opt, first, rows


@contextlib.contextmanager
def _stage(timing: dict, name: str):
    """Record the wall time (``time.perf_counter``) and the CPU time of the process, all
    threads (``time.process_time``), of the ``with`` block as ``timing[name]``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timing[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def _clear(out_dir: str, resume: bool) -> None:
    """Remove the finish mark (``summary.json``) of an earlier run in ``out_dir``, and its
    checkpoint unless resuming from it."""
    for name in (SUMMARY,) if resume else (SUMMARY, CHECKPOINT):
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            os.remove(path)


def run_optimization(config: Config, out_dir: str, resume: bool = False, progress: bool = True,
                     stop_after: int | None = None, deterministic: bool = False) -> dict:
    """Run (or resume) the optimization described by ``config``; write outputs to ``out_dir``.

    ``resume`` continues from ``out_dir``'s checkpoint (from step 0 when the run
    wrote none); only the keys in ``RESUMABLE`` may differ from the run's config.
    ``deterministic`` runs the steps and evaluations on one Dr.Jit thread
    (bit-identical runs; a resumed run keeps the mode it was started with).
    ``stop_after`` ends the run after that step as if it had been killed there,
    without a final checkpoint (used to test ``--resume``). Returns the summary
    written to ``summary.json``; ``{"finished": True, ...}`` when a resumed run
    had nothing left to do. The summary's ``timing`` holds the wall and CPU seconds of the
    stages of this call (``setup``: scene and references; ``initial_eval``; ``steps``;
    ``final_eval``; ``export``); a resumed run times the steps it ran.
    """
    saved = _saved_run(config, out_dir) if resume else {}
    deterministic = deterministic or bool(saved.get("deterministic", False))
    threads = one_thread if deterministic else contextlib.nullcontext
    os.makedirs(out_dir, exist_ok=True)
    timing = {}
    with _stage(timing, "setup"):
        problem = setup_problem(config)
        sampler = make_pixel_sampler(config, problem)
        ckpt_path = os.path.join(out_dir, CHECKPOINT)
        opt, first, covered = _optimizer(config, problem, sampler, ckpt_path, resume)
    steps = config.optimize.steps
    if first >= steps and os.path.isfile(os.path.join(out_dir, SUMMARY)):
        return {"finished": True, "steps_done": first, "steps": steps}
    _clear(out_dir, resume)
    write_json(os.path.join(out_dir, "config.json"),
               {"config": config.to_dict(), "versions": versions(), "keys": problem.keys,
                "deterministic": deterministic})
    eval_split = problem.test or problem.train
    with _stage(timing, "initial_eval"), threads():
        initial = _initial_state(config, problem, out_dir, eval_split, resume)
    metrics_path = os.path.join(out_dir, METRICS)
    log, rows = MetricsLog.resume(metrics_path, covered) if first else (MetricsLog.create(metrics_path), [])
    try:
        with _stage(timing, "steps"):
            core = _core(config, problem, sampler, deterministic)
            rows = _steps(config, problem, opt, sampler, core, out_dir, log, rows, first, stop_after, threads,
                          progress)
    finally:
        log.close()
    if rows is None:
        return {"stopped_after": stop_after}
    return _finish(config, problem, eval_split, out_dir, rows, initial, threads, timing)


def _core(config: Config, problem: Problem, sampler, deterministic: bool):
    """The steps' core (``step.make_core``), frozen unless ``optimize.freeze`` is false or
    :func:`rvs_mi.optimize.frozen.blocker` gives a reason."""
    core = make_core(config, problem, full_batches=sampler is not None and sampler.pixels.raster)
    if not config.optimize.freeze:
        return core
    return FrozenCore(core, blocker(problem.scene, problem.params, problem.keys, deterministic,
                                    sparse=sampler is not None and not sampler.pixels.raster))


def _steps(config: Config, problem: Problem, opt, sampler, core, out_dir, log, rows, first, stop_after, threads,
           progress):
    """Steps ``first`` .. steps − 1: a metrics row each, checkpoints, snapshots; the rows
    (None when stopped by ``stop_after``). The progress bar shows only when ``progress`` is
    true and stderr is a terminal (tqdm's ``disable=None``), so logs get no bar updates."""
    ckpt_path = os.path.join(out_dir, CHECKPOINT)
    elapsed0 = float(rows[-1]["elapsed_s"]) if rows else 0.0
    pixels = int(rows[-1]["pixels"]) if rows else 0
    steps, out_cfg = config.optimize.steps, config.output
    bar = tqdm(range(first, steps), initial=first, total=steps, desc="optimize",
               disable=None if progress else True, dynamic_ncols=True)
    t_start = time.perf_counter()
    for i in bar:
        with threads():
            row = step(config, problem, opt, sampler, i, core)
        _check_finite(opt, row, i, ckpt_path)
        pixels += row["pixels"]
        rows.append({"step": i, "loss": row["loss"], "train_psnr_linear": row["train_psnr"], "lr": row["lr"],
                     "elapsed_s": elapsed0 + time.perf_counter() - t_start, "pixels": pixels,
                     "param_error": parameter_error(config.optimize.truth, problem.params)})
        log.append(rows[-1])
        bar.set_postfix(loss=f"{row['loss']:.4g}", psnr_linear=f"{row['train_psnr']:.2f}")
        if (out_cfg.checkpoint_every and (i + 1) % out_cfg.checkpoint_every == 0) or i == steps - 1:
            log.sync()
            save_checkpoint(ckpt_path, i, opt, problem.keys, sampler, rows=len(rows))
        if out_cfg.snapshot_every and (i + 1) % out_cfg.snapshot_every == 0:
            _snapshot(problem, problem.test or problem.train, out_dir, i, out_cfg.eval_spp, threads)
        if i == stop_after:
            bar.close()
            return None
    bar.close()
    return rows


def _check_finite(opt, row: dict, i: int, ckpt_path: str) -> None:
    """Stop before anything of step ``i`` is written when its loss, parameters or moments are not finite."""
    bad = nonfinite_keys(opt)
    if bad or not math.isfinite(row["loss"]):
        what = f"parameters or optimizer moments of {', '.join(bad)}" if bad else "the loss"
        last = (f"the last good checkpoint is {ckpt_path}" if os.path.isfile(ckpt_path)
                else "no checkpoint was written")
        raise UserError(f"step {i}: non-finite values (NaN/inf) in {what} (loss {row['loss']}); "
                        f"stopped, {last}")


def _snapshot(problem: Problem, split, out_dir: str, i: int, spp: int, threads) -> None:
    os.makedirs(os.path.join(out_dir, "snapshots"), exist_ok=True)
    with dr.suspend_grad(), threads():
        image = mi.render(problem.scene, sensor=split.sensors[0], spp=spp)
    write_image(os.path.join(out_dir, "snapshots", f"step_{i + 1:05d}.png"), image)


def _export(problem: Problem, eval_split, out_dir: str) -> dict:
    """``result/`` (:func:`export_result`, seen from the first evaluation view): {"exported":
    paths relative to ``out_dir``}, plus "export_error" when the scene cannot be exported
    (also printed on stderr; the run's other outputs stand)."""
    try:
        paths = export_result(problem.scene, os.path.join(out_dir, RESULT_DIR), eval_split.sensors[0])
    except UserError as exc:
        print(f"rvs-mi optimize: warning: no {RESULT_DIR}/ written: {exc}", file=sys.stderr)
        return {"exported": [], "export_error": str(exc)}
    return {"exported": [os.path.relpath(p, out_dir) for p in paths]}


def _finish(config: Config, problem: Problem, eval_split, out_dir: str, rows, initial, threads,
            timing: dict) -> dict:
    """Final evaluation, result images, plots, ``params.npz``, the exported result and, last,
    ``summary.json`` (its presence marks the run as finished)."""
    with _stage(timing, "final_eval"), threads():
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
        "pixels_rendered": int(rows[-1]["pixels"]) if rows else 0, "keys": problem.keys,
        "seed": config.optimize.seed,
    }
    summary.update(geometry_summary(config, problem, initial))
    initial_images = np.load(os.path.join(out_dir, "initial_images.npy"))
    plot_run(out_dir, rows, eval_split.images, initial_images, images, summary)
    params = {k.replace("/", "_"): np.array(problem.params[k]) for k in problem.keys}
    atomic_write(os.path.join(out_dir, "params.npz"), lambda f: np.savez(f, **params))
    with _stage(timing, "export"), threads():
        summary.update(_export(problem, eval_split, out_dir))
    summary["timing"] = timing
    write_json(os.path.join(out_dir, SUMMARY), summary)
    return summary
