"""One optimization step of ``rvs-mi optimize``, and the pieces it is made of.

A step: grid upsampling when scheduled, the learning rate of the schedule,
a render of one view (all pixels, or a sparse batch from a pixel sampler),
image loss + regularizers, ``dr.backward``, the optimizer step, clamping,
redistancing, ``params.update``. Every random choice is a function of
(seed, step), so a run resumed from a checkpoint ends where an
uninterrupted one does.
"""
import contextlib
import math
import re

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from .config import Config
from .losses import image_loss, laplacian, total_variation
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


def regularization(config: Config, problem: Problem, opt, step: int = 0):
    """Σ weights × (eikonal term of a neural SDF, TV and Laplacian of the 3-D grids)."""
    reg = config.regularizers
    total = 0.0
    if reg.eikonal > 0:
        from ..sdf.neural import NeuralSDF, eikonal_loss
        source = getattr(problem.scene.integrator(), "source", None)
        if not isinstance(source, NeuralSDF):
            raise UserError("regularizers.eikonal needs a neural SDF ([scene] neural_sdf = {...})")
        seed = (config.optimize.seed * 1000003 + step) & 0x7FFFFFFF
        total = total + reg.eikonal * eikonal_loss(source, reg.eikonal_points, seed)
    for key in grid_keys(problem, reg.params):
        if reg.tv > 0:
            total = total + reg.tv * total_variation(opt[key])
        if reg.laplacian > 0:
            total = total + reg.laplacian * laplacian(opt[key])
    return total


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
    opt.set_learning_rate(lr)
    for pattern, factor in config.optimize.lr_scale.items():
        opt.set_learning_rate({k: lr * float(factor) for k in problem.keys if matches([pattern], k)})


def _full_image_loss(config: Config, problem: Problem, step: int, step_seed: int):
    """Loss of one whole training view: (loss, training PSNR, pixels rendered)."""
    c = config.optimize
    view = int(np.random.default_rng([c.seed, step]).integers(len(problem.train.sensors)))
    image = mi.render(problem.scene, problem.params, sensor=problem.train.sensors[view], spp=c.spp,
                      spp_grad=c.spp_grad or c.spp, seed=step_seed, seed_grad=step_seed + 1)
    loss = image_loss(image, problem.ref_train[view], c.loss, c.huber_delta, c.multiscale)
    return loss, psnr_linear(np.array(image), problem.train.images[view]), image.shape[0] * image.shape[1]


def _sparse_loss(config: Config, problem: Problem, sampler, step: int, step_seed: int):
    """Weighted loss of a sparse pixel batch: (loss, training PSNR, pixels rendered)."""
    from .. import sampling
    c = config.optimize
    batch = sampler.draw(step)
    tangent = None
    if sampler.needs_tangent:     # random projection: two more primal renders of the batch
        _, tangent = sampling.render_pixels_tangent(problem.scene, problem.params, problem.train.sensors,
                                                    batch, problem.keys, spp=c.spp, seed=step_seed + 7,
                                                    direction_seed=step_seed)
    values = sampling.render_pixels(problem.scene, problem.params, problem.train.sensors, batch,
                                    spp=c.spp, spp_grad=c.spp_grad or c.spp, seed=step_seed)
    reference = sampling.gather_reference(problem.ref_train, batch)
    loss = sampling.weighted_loss(values, reference, batch, kind=c.loss, delta=c.huber_delta)
    sampler.observe(batch, values, reference, tangent=tangent, kind=c.loss, delta=c.huber_delta)
    train_psnr = psnr_linear(np.array(dr.detach(values)), np.array(reference))
    return loss, train_psnr, sampler.pixels_per_step(batch)


def step(config: Config, problem: Problem, opt, sampler, step: int) -> dict:
    """Run optimization step ``step``; returns its metrics (loss, linear training PSNR, lr, pixels)."""
    if step in config.upsample.at_steps:
        _upsample(config, problem, opt)
    lr = learning_rate(config, step)
    _set_learning_rates(config, problem, opt, lr)
    step_seed = (config.optimize.seed * 1000003 + step * 2) & 0x7FFFFFFF
    if sampler is None:
        loss, train_psnr, pixels = _full_image_loss(config, problem, step, step_seed)
    else:
        loss, train_psnr, pixels = _sparse_loss(config, problem, sampler, step, step_seed)
    loss = loss + regularization(config, problem, opt, step)
    dr.backward(loss)
    opt.step()
    for pattern, (lo, hi) in config.optimize.clamp.items():
        for key in problem.keys:
            if matches([pattern], key):
                opt[key] = dr.clip(opt[key], lo, hi)
    every = config.regularizers.redistance_every
    if every and (step + 1) % every == 0:
        from ..sdf.redistance import redistance
        for key in grid_keys(problem, config.regularizers.sdf_params):
            opt[key] = redistance(opt[key], _voxel_size(problem, opt[key].shape))
    problem.params.update(opt)
    return {"loss": float(np.array(dr.detach(loss)).ravel()[0]), "train_psnr": train_psnr, "lr": lr,
            "pixels": pixels}
