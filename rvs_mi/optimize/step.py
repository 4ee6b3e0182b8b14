"""One optimization step of ``rvs-mi optimize``, and the pieces it is made of.

A step: grid upsampling when scheduled, the learning rate of the schedule,
the step's inputs (a whole view, or a sparse batch of one view or of all views
from a pixel sampler), then the core (:func:`make_core`: render, image loss +
regularizers, ``dr.backward``, the optimizer step, clamping; frozen by
``rvs_mi.optimize.frozen``), then redistancing and ``params.update``. Every
random choice is a function of (seed, step), so a run resumed from a
checkpoint ends where an uninterrupted one does.
"""
import contextlib
import math
import re

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from .config import Config
from .losses import HUBER_DELTA, image_loss, laplacian, total_variation
from .metrics import psnr_linear
from .problem import Problem


@contextlib.contextmanager
def one_thread():
    """Run Dr.Jit kernels on one thread, so that scatter-adds (texture and gather adjoints) and
    block reductions sum in a fixed order: bit-identical results from run to run."""
    saved = dr.thread_count()
    dr.set_thread_count(1)
    try:
        yield
    finally:
        dr.set_thread_count(saved)


def matches(patterns, key: str) -> bool:
    """``key`` equals one of ``patterns`` or fully matches one as a regular expression."""
    return any(p == key or re.fullmatch(p, key) for p in patterns)


def grid_keys(problem: Problem, patterns, keys=None) -> list:
    """Optimized keys that hold 3-D grids (Z×Y×X×C tensors), filtered by ``patterns``."""
    keys = problem.keys if keys is None else keys
    return [k for k in keys if getattr(problem.params[k], "ndim", 0) == 4
            and (not patterns or matches(patterns, k))]


def learning_rate(config: Config, step: int) -> float:
    """lr · s(step/(steps − 1)): s = 1 (constant), f + (1 − f)(1 + cos πx)/2 (cosine), f^x (exponential)."""
    opt = config.optimize
    frac = min(step / max(opt.steps - 1, 1), 1.0)
    if opt.lr_schedule == "cosine":
        return opt.lr * (opt.lr_final + (1 - opt.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))
    if opt.lr_schedule == "exponential":
        return opt.lr * opt.lr_final ** frac
    return opt.lr


def regularization(config: Config, scene, keys, opt, eikonal_points=None):
    """Σ weights × (eikonal term of a neural SDF at ``eikonal_points``, TV and Laplacian of the
    3-D grids)."""
    reg = config.regularizers
    total = 0.0
    if reg.eikonal > 0:
        from ..sdf.neural import eikonal_at
        total = total + reg.eikonal * eikonal_at(scene.integrator().source, eikonal_points)
    for key in keys:
        if reg.tv > 0:
            total = total + reg.tv * total_variation(opt[key])
        if reg.laplacian > 0:
            total = total + reg.laplacian * laplacian(opt[key])
    return total


def _eikonal_points(config: Config, problem: Problem, step: int):
    """The step's eikonal points (uniform in the neural SDF's bounding sphere), or None."""
    reg = config.regularizers
    if reg.eikonal <= 0:
        return None
    from ..sdf.neural import NeuralSDF, sample_ball
    source = getattr(problem.scene.integrator(), "source", None)
    if not isinstance(source, NeuralSDF):
        raise UserError("regularizers.eikonal needs a neural SDF ([scene] neural_sdf = {...})")
    seed = (config.optimize.seed * 1000003 + step) & 0x7FFFFFFF
    return sample_ball(reg.eikonal_points, seed, source.center_list, source.bound)


def _voxel_size(problem: Problem, shape) -> tuple:
    """World-space voxel size (x, y, z) of an SDF grid of ``shape`` (Z, Y, X, C): the length of the
    grid's local axis k in world units (column k of to_world = A⁻¹) over its resolution."""
    to_local = getattr(getattr(problem.scene.integrator(), "source", None), "A", None)
    if to_local is None:
        raise UserError("regularizers.redistance_every needs an SDF integrator with a grid SDF")
    to_world = np.linalg.inv(np.asarray(to_local, dtype=np.float64))
    axes = to_world / np.linalg.norm(to_world, axis=0)
    if np.abs(axes.T @ axes - np.eye(3)).max() > 1e-5:
        raise UserError("regularizers.redistance_every needs a grid SDF whose to_world keeps the "
                        "grid's axes orthogonal (no shear)")
    return tuple(float(np.linalg.norm(to_world[:, a])) / shape[2 - a] for a in range(3))


def _upsample(config: Config, problem: Problem, opt) -> None:
    for key in grid_keys(problem, config.upsample.params):
        z, y, x, c = opt[key].shape
        opt[key] = dr.resample(opt[key], (2 * z, 2 * y, 2 * x, c), filter="linear")
    problem.params.update(opt)


def _set_learning_rates(config: Config, problem: Problem, opt, lr: float) -> None:
    """lr for every key, times the last matching ``lr_scale`` factor. Each key gets its own
    fresh opaque ``Float``: a recorded (frozen) step then reads the schedule's current value
    instead of a constant, and no two keys share an array (``dr.opt`` scales the learning-rate
    array it is given in place)."""
    rates = {k: lr for k in problem.keys}
    for pattern, factor in config.optimize.lr_scale.items():
        rates.update({k: lr * float(factor) for k in problem.keys if matches([pattern], k)})
    opt.set_learning_rate({k: dr.opaque(mi.Float, v) for k, v in rates.items()})


def _inputs(config: Config, problem: Problem, sampler, step: int):
    """What a step's core reads: (data, view, batch, tangent). ``data`` holds Dr.Jit arrays and
    Mitsuba objects only (the inputs of a frozen core); random choices are made here, on the
    host, from (seed, step)."""
    c = config.optimize
    seed = (c.seed * 1000003 + step * 2) & 0x7FFFFFFF
    data = {"seed": dr.opaque(mi.UInt32, seed)}
    points = _eikonal_points(config, problem, step)
    if points is not None:
        data["eikonal_points"] = points
    if sampler is None:
        view = int(np.random.default_rng([c.seed, step]).integers(len(problem.train.sensors)))
        data.update(sensor=problem.train.sensors[view], reference=problem.ref_train[view])
        return data, view, None, None
    from .. import sampling
    batch = sampler.draw(step)
    tangent = None
    if sampler.needs_tangent:     # random projection: two more primal renders of the batch
        _, tangent = sampling.render_pixels_tangent(problem.scene, problem.params, problem.train.sensors,
                                                    batch, problem.keys, spp=c.spp, seed=seed + 7,
                                                    direction_seed=seed)
    flat = _flat_sensor(problem, batch.size)
    flat.pixel_idx = batch.flat_index
    dr.eval(flat.pixel_idx)
    if batch.view is None:                    # a batch over all views: one stacked reference
        if problem.stacked_refs is None:
            problem.stacked_refs = sampling.stack_references(problem.ref_train)
        reference = sampling.gather_reference(problem.stacked_refs, batch)
    else:
        reference = sampling.gather_reference(problem.ref_train, batch)
    # the source sensors go in too: the flat sensor dispatches to them
    data.update(sources=list(problem.train.sensors), sensors=flat, pixel=batch.pixel_index,
                flat_pixel=flat.pixel_idx, weight=batch.weight, reference=reference)
    own_pixels = getattr(problem.scene.integrator(), "render_pixels", None) is not None
    if batch.view is not None and (own_pixels or batch.full):
        # The SDF integrators render the list through the view's own sensor; a replay of a
        # recording made for another view did not follow the traced run. The view as a
        # Python int makes a frozen step keep one recording per view. (The flat sensor serves
        # every other batch without the view's sensor, so their steps share one recording.)
        data.update(sensor=problem.train.sensors[batch.view], view=batch.view)
    dr.eval(data["reference"])
    return data, batch.view, batch, tangent


def _flat_sensor(problem: Problem, n: int):
    """The run's flat sensor for batches of ``n`` pixels (``rvs_mi.sampling.render``), made once
    and reused: each step sets its pixels and finishes its backward pass before the next step.
    A new sensor object per step would make a frozen step record again at every step."""
    if n not in problem.flat_sensors:
        from ..sampling.render import flat_sensor
        sensors = list(problem.train.sensors)
        problem.flat_sensors[n] = flat_sensor(sensors, n, sensors[0].film().base_channels_count())
    return problem.flat_sensors[n]


def make_core(config: Config, problem: Problem, full_batches: bool = False):
    """The part of a step that is Dr.Jit work only: render (a whole view, or a pixel batch),
    loss + regularizers, ``dr.backward``, the optimizer step and the clamps.

    ``core(scene, params, opt, data) -> (loss, values)``, both detached. Every array it reads
    comes in through its arguments (the scene's plugins, the optimizer, ``data``), and it
    reads no value back to the host, so ``dr.freeze`` can record it once and replay it.
    ``full_batches``: the sampler's batches are whole images in raster order."""
    c, reg = config.optimize, config.regularizers
    spp, spp_grad = c.spp, c.spp_grad or c.spp
    reg_keys = grid_keys(problem, reg.params)
    clamps = [(key, lo, hi) for pattern, (lo, hi) in c.clamp.items() for key in problem.keys
              if matches([pattern], key)]

    def core(scene, params, opt, data):
        values, loss = render_loss(scene, params, data, spp, spp_grad, c.loss, c.huber_delta, c.multiscale,
                                   full_batches)
        loss = loss + regularization(config, scene, reg_keys, opt, data.get("eikonal_points"))
        descend(opt, loss, clamps)
        return dr.detach(loss), dr.detach(values)
    return core


def render_loss(scene, params, data, spp, spp_grad, kind, delta=HUBER_DELTA, levels=1, full_batches=False,
                fallback="error"):
    """(values, loss) of one step's ``data``: a whole view (``sensor``, ``seed``,
    ``reference``) and its image loss, or a pixel batch (``sensors``, the flat sensor or the
    views; ``sensor`` where a view's own serves; ``pixel``, ``flat_pixel``, ``weight``,
    ``reference``, ``seed``) and its weighted per-sample loss (5.1)."""
    from .. import sampling
    if "pixel" not in data:
        values = mi.render(scene, params, sensor=data["sensor"], spp=spp, spp_grad=spp_grad, seed=data["seed"])
        return values, image_loss(values, data["reference"], kind, delta, levels)
    values = sampling.render_indices(scene, params, data["sensors"], data.get("sensor"), data["pixel"],
                                     data["flat_pixel"], full_batches, spp, spp_grad, data["seed"], 0,
                                     fallback=fallback)
    return values, dr.sum(sampling.per_sample_loss(values, data["reference"], kind, delta)
                          * dr.detach(data["weight"]))                                        # (5.1)


def descend(opt, loss, clamps):
    """``dr.backward(loss)``, the optimizer's step, then the clamps ((key, lo, hi) each)."""
    dr.backward(loss)
    opt.step()
    for key, lo, hi in clamps:
        opt[key] = dr.clip(opt[key], lo, hi)


def step(config: Config, problem: Problem, opt, sampler, step: int, core=None) -> dict:
    """Run optimization step ``step``; returns its metrics (loss, linear training PSNR, lr, pixels).
    ``core``: :func:`make_core`'s function, or a frozen version of it (made here when None)."""
    if step in config.upsample.at_steps:
        _upsample(config, problem, opt)
    lr = learning_rate(config, step)
    _set_learning_rates(config, problem, opt, lr)
    data, view, batch, tangent = _inputs(config, problem, sampler, step)
    if core is None:
        core = make_core(config, problem, full_batches=batch is not None and batch.full)
    loss, values = core(problem.scene, problem.params, opt, data)
    every = config.regularizers.redistance_every
    if every and (step + 1) % every == 0:
        from ..sdf.redistance import redistance
        for key in grid_keys(problem, config.regularizers.sdf_params):
            opt[key] = redistance(opt[key], _voxel_size(problem, opt[key].shape))
    problem.params.update(opt)
    c = config.optimize
    if batch is None:
        pixels = values.shape[0] * values.shape[1]
        train_psnr = psnr_linear(np.array(values), problem.train.images[view])
    else:
        sampler.observe(batch, values, data["reference"], tangent=tangent, kind=c.loss, delta=c.huber_delta)
        train_psnr = psnr_linear(np.array(values), np.array(data["reference"]))
        pixels = sampler.pixels_per_step(batch)
    return {"loss": float(np.array(loss).ravel()[0]), "train_psnr": train_psnr, "lr": lr, "pixels": pixels}
