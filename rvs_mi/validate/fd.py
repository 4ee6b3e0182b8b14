"""Central finite differences against forward/reverse-mode AD for one scene parameter.

The parameter θ (scalar, vector or tensor) is moved along a direction v
(v = 1 for a scalar, otherwise seeded Gaussian with unit RMS):
θ(s) = θ0 + s·v. With s a differentiable scalar at 0,

* forward mode:  dI/ds            = dr.forward(s) through ``mi.render``
* reverse mode:  d(Σ I·w)/ds      = dr.grad(s) after dr.backward(Σ I·w), w random
* finite diff.:  (I(+ε/2) − I(−ε/2)) / ε, rendered with the same seed.
"""
from __future__ import annotations

import difflib
import json
import os
import platform
import time
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

from ..checks import integer, number
from ..errors import UserError


@dataclass
class FDResult:
    fd: np.ndarray                       # finite-difference image  dI/ds  (H×W×C)
    ad: np.ndarray | None                # forward-mode AD image, None in backward-only mode
    report: dict = field(default_factory=dict)


def compare_gradients(ad: np.ndarray, fd: np.ndarray, significant: float = 0.1,
                      mask: np.ndarray | None = None) -> dict:
    """Agreement metrics of an AD gradient image with a finite-difference one.

    ``relative_error`` = ‖AD − FD‖₂ / ‖FD‖₂; ``correlation`` (Pearson);
    ``sign_agreement`` over entries with |FD| ≥ ``significant``·max|FD|.
    ``mask`` (optional, boolean, broadcastable to the images, e.g. H×W for an
    H×W×C image) restricts every metric to the selected pixels.
    """
    ad = np.asarray(ad, dtype=np.float64)
    fd = np.asarray(fd, dtype=np.float64)
    if ad.shape != fd.shape:
        raise ValueError(f"gradient images differ in size: {ad.shape} vs {fd.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.ndim < ad.ndim:
            m = m.reshape(m.shape + (1,) * (ad.ndim - m.ndim))
        try:
            m = np.broadcast_to(m, ad.shape)
        except ValueError:
            raise ValueError(f"mask of shape {np.shape(mask)} does not fit images of shape {ad.shape}")
        ad, fd = ad[m], fd[m]
    ad, fd = ad.ravel(), fd.ravel()
    norm_fd = float(np.linalg.norm(fd))
    diff = ad - fd
    rel = float(np.linalg.norm(diff) / norm_fd) if norm_fd > 0 else float(np.linalg.norm(diff) > 0) * np.inf
    std_ad, std_fd = float(np.std(ad)), float(np.std(fd))
    corr = float(np.corrcoef(ad, fd)[0, 1]) if std_ad > 0 and std_fd > 0 else 0.0
    mask = np.abs(fd) >= significant * float(np.max(np.abs(fd), initial=0.0))
    mask &= np.abs(fd) > 0
    sign = float(np.mean(np.sign(ad[mask]) == np.sign(fd[mask]))) if mask.any() else 1.0
    return {
        "relative_error": rel,
        "correlation": corr,
        "sign_agreement": sign,
        "significant_pixels": int(mask.sum()),
        "max_abs_error": float(np.max(np.abs(diff), initial=0.0)),
        "max_abs_fd": float(np.max(np.abs(fd), initial=0.0)),
        "norm_fd": norm_fd,
    }


def _closest_keys(params, key: str, n: int = 5) -> list[str]:
    keys = list(params.keys())
    close = difflib.get_close_matches(key, keys, n=n, cutoff=0.3)
    return close or [k for k in keys if key.split(".")[-1] in k][:n] or keys[:n]


def _resolve_parameter(params, key: str):
    """The parameter's value, after checking that it exists and is differentiable."""

    if key not in params.keys():
        raise UserError(f"unknown parameter {key!r}; closest keys: "
                        + ", ".join(_closest_keys(params, key)))
    value = params[key]
    non_diff = bool(params.flags(key) & mi.ParamFlags.NonDifferentiable.value)
    if non_diff or not (dr.is_array_v(value) and dr.is_float_v(value) and dr.is_diff_v(value)):
        raise UserError(f"parameter {key!r} ({type(value).__name__}) is not differentiable")
    if dr.is_matrix_v(value):
        raise UserError(f"parameter {key!r} is a matrix/transform; perturb a scalar, "
                        "vector or tensor parameter instead")
    return value


def _direction(value, seed: int):
    """Seeded perturbation direction of unit RMS with the type and shape of ``value``."""
    array = np.array(value, dtype=np.float64)
    if array.size == 1:
        return type(value)(dr.ones(type(value), dr.shape(value))), [1.0]
    v = np.random.default_rng(seed).standard_normal(array.shape)
    v /= np.sqrt(np.mean(v * v))
    return type(value)(v.astype(np.float32)), v.ravel()[:8].tolist()


def _render_seed(seed: int) -> int:
    """The render seed of the FD renders and of the derivative pass.

    Shifted by one: ``mi.render`` treats ``seed_grad=0`` as "not given" and
    derives another seed, which would decorrelate the AD pass from the FD
    renders for the user's ``seed=0``.
    """
    return seed + 1


def _render(scene, params, spp: int, seed: int, sensor: int):
    """Render; the derivative pass uses the FD renders' seed, so their noise correlates."""
    return mi.render(scene, params, sensor=sensor, seed=_render_seed(seed) + 1,
                     seed_grad=_render_seed(seed), spp=spp, spp_grad=spp)


def fd_check(scene, key: str, eps: float | None = None, spp: int = 64, fd_spp: int | None = None,
             mode: str = "both", seed: int = 0, direction_seed: int = 0, sensor: int = 0,
             progress=None) -> FDResult:
    """Check the gradient of ``mi.render(scene)`` w.r.t. ``mi.traverse(scene)[key]``.

    ``eps`` defaults to 1e-3·max(1, RMS θ). Forward mode produces an AD image
    compared pixel by pixel; reverse mode is checked as the directional
    derivative of Σ I·w for a seeded random weight image w. ``progress`` is
    an optional callable receiving a short stage name.
    """

    if mode not in ("forward", "backward", "both"):
        raise UserError(f"mode must be forward, backward or both (got {mode!r})")
    spp = integer("spp", spp, 1)
    fd_spp = spp if fd_spp is None else integer("fd-spp", fd_spp, 1)
    seed = integer("seed", seed, 0, 2**32 - 2)           # render seeds are seed + 1 (uint32)
    direction_seed = integer("direction seed", direction_seed, 0)
    sensor = integer("sensor", sensor, 0, len(scene.sensors()) - 1)
    params = mi.traverse(scene)
    base = _resolve_parameter(params, key)
    base = type(base)(base)  # private copy, restored at the end
    direction, direction_head = _direction(base, direction_seed)
    rms = float(np.sqrt(np.mean(np.square(np.array(base, dtype=np.float64)))))
    eps = 1e-3 * max(1.0, rms) if eps is None else number("eps", eps, 0.0, lo_open=True)
    step = progress or (lambda stage: None)
    timings = {}

    def set_param(offset):
        params[key] = base + offset * direction
        params.update()

    try:
        # Central finite differences, same seed on both sides.
        step("finite differences")
        t0 = time.perf_counter()
        set_param(0.5 * eps)
        plus = np.array(mi.render(scene, params, sensor=sensor, seed=_render_seed(seed), spp=fd_spp), dtype=np.float64)
        set_param(-0.5 * eps)
        minus = np.array(mi.render(scene, params, sensor=sensor, seed=_render_seed(seed), spp=fd_spp), dtype=np.float64)
        fd = (plus - minus) / eps
        timings["finite_differences_s"] = time.perf_counter() - t0

        report: dict = {}
        ad = None
        if mode in ("forward", "both"):
            step("forward-mode AD")
            t0 = time.perf_counter()
            s = mi.Float(0.0)
            dr.enable_grad(s)
            set_param(s)
            image = _render(scene, params, spp, seed, sensor)
            dr.forward(s)
            ad = np.array(dr.grad(image), dtype=np.float64)
            timings["forward_s"] = time.perf_counter() - t0
            report["forward"] = compare_gradients(ad, fd)

        if mode in ("backward", "both"):
            step("reverse-mode AD")
            t0 = time.perf_counter()
            weights = np.random.default_rng(direction_seed + 1).uniform(0, 1, fd.shape)
            s = mi.Float(0.0)
            dr.enable_grad(s)
            set_param(s)
            image = _render(scene, params, spp, seed, sensor)
            dr.backward(dr.sum(image * mi.TensorXf(weights.astype(np.float32)), axis=None))
            reverse_ad = float(dr.grad(s)[0])
            reverse_fd = float(np.sum(fd * weights))
            denom = max(abs(reverse_fd), 1e-12)
            report["backward"] = {"ad": reverse_ad, "fd": reverse_fd,
                                  "relative_error": abs(reverse_ad - reverse_fd) / denom,
                                  "weight_seed": direction_seed + 1}
            timings["backward_s"] = time.perf_counter() - t0
    finally:
        params[key] = base
        params.update()

    errors = [report[m]["relative_error"] for m in ("forward", "backward") if m in report]
    report.update({
        "parameter": key,
        "parameter_type": type(base).__name__,
        "parameter_size": int(np.array(base).size),
        "direction_seed": direction_seed,
        "direction_head": direction_head,
        "eps": eps, "spp": spp, "fd_spp": fd_spp, "seed": seed, "sensor": sensor,
        "mode": mode,
        "relative_error": max(errors),
        "image_shape": list(fd.shape),
        "timings": timings,
        "versions": versions(),
    })
    return FDResult(fd=fd, ad=ad, report=report)


def versions() -> dict:
    from .. import __version__
    return {"rvs_mi": __version__, "mitsuba": mi.__version__, "drjit": dr.__version__,
            "variant": mi.variant(), "python": platform.python_version()}


def write_fd_outputs(result: FDResult, folder: str) -> dict[str, str]:
    """Write ``fd.exr``, ``ad.exr``, ``strip.png`` (AD | FD | difference) and ``report.json``."""
    from ..imageio import write_image, write_signed_strip

    os.makedirs(folder, exist_ok=True)
    paths = {"fd": os.path.join(folder, "fd.exr"), "report": os.path.join(folder, "report.json")}
    write_image(paths["fd"], result.fd)
    if result.ad is not None:
        paths["ad"] = os.path.join(folder, "ad.exr")
        paths["strip"] = os.path.join(folder, "strip.png")
        write_image(paths["ad"], result.ad)
        rel = result.report["forward"]["relative_error"]
        write_signed_strip(paths["strip"], {"AD (forward)": result.ad, "FD": result.fd,
                                            "AD - FD": result.ad - result.fd},
                           title=f"{result.report['parameter']}: relative error {rel:.3g}")
    with open(paths["report"], "w") as f:
        json.dump(result.report, f, indent=2)
    return paths
