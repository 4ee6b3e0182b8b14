"""The recipe of Mitsuba's tutorial "Radiance Field Reconstruction (NeRF-like)" as an anchor.

A ReLU-fields-style emissive volume (Karnewar et al. 2022) inside a world-space box:

- density σ = max(grid, 0) from a trilinear ``mi.Texture3f`` (1 channel), emission from a
  degree-2 spherical-harmonics grid (27 channels, ``dr.sh_eval``) clipped to [0, 1];
- a ray marches the box with one step per voxel (step = smallest box extent / res) from a
  jittered start and accumulates front to back: L += β(1 − e^{−σ·step})·Le, β *= e^{−σ·step};
  the background colour × the final β is added at the end (datasets composited over it);
- the adjoint pass re-marches the ray and back-propagates the local terms of each step
  (``dr.backward_from``), as Mitsuba's PRB integrators do, so memory is O(1) per ray;
- training: grids at 16³, density 0.01, SH 0.1, Adam lr 0.2, L1 loss, 1 spp, one random
  training view per step, grids resampled ×2 at stage boundaries; density clipped to ≥ 0
  after each step only when ReLU is off (the tutorial's rule).

``--selfcheck`` compares a primal render of a constant slab with (1 − e^{−σL})·c + e^{−σL}·bg
and the adjoint gradient with central finite differences of the same estimator.

    .venv/bin/python benchmarks/anchors/tutorial_rf.py --selfcheck
"""
from __future__ import annotations

import argparse
import sys
import time

import drjit as dr
import mitsuba as mi
import numpy as np

if mi.variant() is None:      # the integrator class below derives from a variant's class
    mi.set_variant("llvm_ad_rgb")

Y00 = 0.28209479177387814      # the constant SH basis function 1 / (2√π)


class TutorialRF(mi.ad.integrators.common.RBIntegrator):
    """Density + SH grids in ``box`` = (min xyz, max xyz); ``parameters`` sigmat and sh_coeffs."""

    def __init__(self, box, res=16, sh_degree=2, density_init=0.01, sh_init=0.1,
                 background=(1.0, 1.0, 1.0), use_relu=True):
        super().__init__(mi.Properties())
        lo, hi = np.asarray(box[:3], dtype=np.float64), np.asarray(box[3:], dtype=np.float64)
        self.bbox = mi.ScalarBoundingBox3f(lo.tolist(), hi.tolist())
        self.extent = hi - lo
        self.sh_degree = sh_degree
        self.use_relu = use_relu
        self.background = mi.ScalarColor3f(*background)
        channels = 3 * (sh_degree + 1) ** 2
        self.sigmat = mi.Texture3f(dr.full(mi.TensorXf, density_init, (res, res, res, 1)))
        self.sh_coeffs = mi.Texture3f(dr.full(mi.TensorXf, sh_init, (res, res, res, channels)))
        self.grid_res = res

    def to_local(self, p):
        """World position → the grids' [0, 1]³ coordinates."""
        return (p - mi.Point3f(self.bbox.min)) / mi.Vector3f(self.extent.tolist())

    def emission(self, u, d):
        coeffs = self.sh_coeffs.eval(u)
        spec = mi.Spectrum(0.0)
        for i, basis in enumerate(dr.sh_eval(d, self.sh_degree)):
            spec += basis * mi.Spectrum(coeffs[3 * i], coeffs[3 * i + 1], coeffs[3 * i + 2])
        return dr.clip(spec, 0.0, 1.0)

    @dr.syntax
    def sample(self, mode, scene, sampler, ray, δL, state_in, active, **kwargs):
        primal = mode == dr.ADMode.Primal
        ray = mi.Ray3f(ray)
        hit, mint, maxt = self.bbox.ray_intersect(ray)
        active = mi.Bool(active) & hit
        if not primal:
            active &= dr.any(δL != 0)
        step = mi.Float(float(self.extent.min()) / self.grid_res)
        t = mi.Float(dr.maximum(mint, 0.0)) + sampler.next_1d(active) * step
        L = mi.Spectrum(0.0 if primal else state_in)
        δL = mi.Spectrum(δL if δL is not None else 0.0)
        β = mi.Spectrum(1.0)
        while active:
            p = ray(t)
            with dr.resume_grad(when=not primal):
                u = self.to_local(p)
                sigma = self.sigmat.eval(u)[0]
                if self.use_relu:
                    sigma = dr.maximum(sigma, 0.0)
                tr = dr.exp(-sigma * step)
                Le = β * (1.0 - tr) * self.emission(u, ray.d)
            β *= tr
            L = L + Le if primal else L - Le
            with dr.resume_grad(when=not primal):
                if not primal:
                    # L is now the radiance from behind this step: it scales with tr
                    dr.backward_from(δL * (L * tr / dr.detach(tr) + Le))
            t += step
            active &= (t < maxt) & dr.any(β != 0.0)
        if primal:
            L += β * mi.Spectrum(self.background)
        return L if primal else δL, mi.Bool(True), [], L

    def traverse(self, cb):
        cb.put("sigmat", self.sigmat.tensor(), mi.ParamFlags.Differentiable)
        cb.put("sh_coeffs", self.sh_coeffs.tensor(), mi.ParamFlags.Differentiable)

    def parameters_changed(self, keys):
        self.sigmat.update_inplace()
        self.sh_coeffs.update_inplace()
        self.grid_res = self.sigmat.shape[0]


def make_scene(integrator):
    """A scene holding only ``integrator`` (its box, grids and background are all it renders)."""
    return mi.load_dict({"type": "scene", "integrator": integrator})


def resample_grids(opt, res: int) -> None:
    """Resample both grids of ``opt`` to res³ (dr.resample, its default cubic filter)."""
    for key in ("sigmat", "sh_coeffs"):
        opt[key] = dr.resample(opt[key], (res, res, res, opt[key].shape[-1]))


def render(scene, sensor, spp: int, seed: int = 0) -> np.ndarray:
    return np.array(mi.render(scene, sensor=sensor, spp=spp, seed=seed))


def train(train_split, box, steps=300, upsample_at=(100, 200), lr=0.2, res=16, sh_degree=2,
          density_init=0.01, sh_init=0.1, spp=1, seed=0, background=(1.0, 1.0, 1.0), use_relu=True,
          clip_density=None, log=None):
    """Fit the grids to ``train_split`` (sensors, linear images); returns (scene, times).

    ``upsample_at``: steps before which both grids double in resolution. ``clip_density``
    None follows the tutorial (clip σ ≥ 0 only without ReLU). ``times``: wall seconds of each
    step with the grid resolution it ran at.
    """
    integrator = TutorialRF(box, res, sh_degree, density_init, sh_init, background, use_relu)
    scene = make_scene(integrator)
    params = mi.traverse(integrator)
    opt = mi.ad.Adam(lr=lr, params={"sigmat": params["sigmat"], "sh_coeffs": params["sh_coeffs"]})
    params.update(opt)
    refs = [mi.TensorXf(np.asarray(img, dtype=np.float32)) for img in train_split.images]
    clip = (not use_relu) if clip_density is None else clip_density
    times = []
    for it in range(steps):
        t0 = time.perf_counter()
        if it in upsample_at:
            resample_grids(opt, 2 * opt["sigmat"].shape[0])
            params.update(opt)
        view = int(np.random.default_rng([seed, it]).integers(len(refs)))
        image = mi.render(scene, params, sensor=train_split.sensors[view], spp=spp, seed=it)
        loss = dr.mean(dr.abs(image - refs[view]), axis=None)
        dr.backward(loss)
        opt.step()
        if clip:
            opt["sigmat"] = dr.maximum(opt["sigmat"], 0.0)
        params.update(opt)
        value = float(loss.array[0])
        times.append((time.perf_counter() - t0, opt["sigmat"].shape[0]))
        if log and (it % 50 == 0 or it == steps - 1):
            log(f"anchor step {it}: L1 {value:.4f}, grid {times[-1][1]}^3, {times[-1][0]:.3f} s")
    return scene, times


# ---------------------------------------------------------------------------- self-check
def _parallel_rays(n, box, seed=1):
    """``n`` rays along +z through the box at random x, y (path length = the z extent)."""
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(box[:3]), np.asarray(box[3:])
    x = rng.uniform(lo[0], hi[0], n) * 0.98
    y = rng.uniform(lo[1], hi[1], n) * 0.98
    o = mi.Point3f(mi.Float(x), mi.Float(y), mi.Float(np.full(n, lo[2] - 1.0)))
    return mi.Ray3f(o, mi.Vector3f(0.0, 0.0, 1.0))


def check_slab(sigma=1.3, colour=(0.2, 0.5, 0.8), background=(1.0, 1.0, 1.0), res=8, n=256):
    """Max |primal − (1 − e^{−σL})·c − e^{−σL}·bg| over ``n`` parallel rays through a constant box."""
    box = (-0.5, -0.5, -0.5, 0.5, 0.5, 0.5)
    integ = TutorialRF(box, res, sh_degree=2, density_init=sigma, sh_init=0.0, background=background)
    params = mi.traverse(integ)
    sh = np.zeros((res, res, res, 27), dtype=np.float32)
    sh[..., :3] = np.asarray(colour) / Y00                 # DC term only: emission = colour
    params["sh_coeffs"] = mi.TensorXf(sh)
    params.update()
    sampler = mi.load_dict({"type": "independent"})
    sampler.seed(0, n)
    L = integ.sample(dr.ADMode.Primal, None, sampler, _parallel_rays(n, box), None, None, mi.Bool(True))[0]
    got = np.array(L)                                      # 3 × n
    tr = np.exp(-sigma * 1.0)
    want = (1.0 - tr) * np.asarray(colour) + tr * np.asarray(background)
    return float(np.abs(got - want[:, None]).max()), want.tolist(), got[:, 0].tolist()


def _tiny_problem(seed=2, res=4, size=8):
    """A 4³ random grid seen by one 8×8 camera; loss = Σ w · image with fixed random weights."""
    box = (-0.5, -0.5, -0.5, 0.5, 0.5, 0.5)
    rng = np.random.default_rng(seed)
    integ = TutorialRF(box, res)
    scene = make_scene(integ)
    params = mi.traverse(integ)
    params["sigmat"] = mi.TensorXf(rng.uniform(1.0, 4.0, (res, res, res, 1)).astype(np.float32))
    sh = rng.uniform(-0.1, 0.1, (res, res, res, 27)).astype(np.float32)
    sh[..., :3] = rng.uniform(0.3, 0.6, (res, res, res, 3)) / Y00     # emission inside (0, 1)
    params["sh_coeffs"] = mi.TensorXf(sh)
    params.update()
    sensor = mi.load_dict({"type": "perspective", "fov": 45,
                           "to_world": mi.ScalarTransform4f().look_at(origin=[0.6, 0.4, 2.0], target=[0, 0, 0],
                                                                      up=[0, 1, 0]),
                           "film": {"type": "hdrfilm", "width": size, "height": size, "rfilter": {"type": "box"}}})
    weights = mi.TensorXf(rng.uniform(0.0, 1.0, (size, size, 3)).astype(np.float32))
    return scene, params, sensor, weights


def check_gradient(eps=1e-2, spp=4, seed=3):
    """(adjoint, finite difference) of the loss along one random direction, per grid."""
    scene, params, sensor, weights = _tiny_problem()
    rng = np.random.default_rng(seed)
    out = {}
    for key in ("sigmat", "sh_coeffs"):
        base = mi.TensorXf(params[key])
        direction = rng.standard_normal(base.shape).astype(np.float32)
        dr.enable_grad(params[key])
        params.update()
        # d loss / d image = weights; the adjoint pass with the primal's seed (mi.render insists on
        # another one) differentiates the very estimator the finite differences evaluate
        scene.integrator().render_backward(scene, params, weights, sensor, seed=7, spp=spp)
        adjoint = float(np.sum(np.array(dr.grad(params[key])) * direction))
        values = []
        for sign in (1.0, -1.0):
            params[key] = base + sign * eps * mi.TensorXf(direction)
            params.update()
            values.append(float(dr.sum(mi.render(scene, sensor=sensor, spp=spp, seed=7) * weights, axis=None).array[0]))
        params[key] = base
        params.update()
        out[key] = (adjoint, (values[0] - values[1]) / (2 * eps))
    return out


def selfcheck() -> int:
    ok = True
    for bg in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        err, want, got = check_slab(background=bg)
        ok &= err < 1e-5
        print(f"slab σ=1.3, L=1, c=(0.2, 0.5, 0.8), bg={bg}: analytic {np.round(want, 6).tolist()}, "
              f"render {np.round(got, 6).tolist()}, max |error| over 256 rays {err:.2e}")
    for key, (adj, fd) in check_gradient().items():
        rel = abs(adj - fd) / max(abs(fd), 1e-12)
        ok &= rel < 1e-2
        print(f"gradient along a random direction, {key}: adjoint {adj:.6f}, central FD {fd:.6f}, "
              f"relative difference {rel:.2e}")
    print("self-check " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selfcheck", action="store_true",
                    help="check a constant slab against the analytic value and the gradient against FD")
    args = ap.parse_args(argv)
    if not args.selfcheck:
        ap.print_help()
        return 0
    return selfcheck()


if __name__ == "__main__":
    sys.exit(main())
