"""``sdf_reparam`` and ``sdf_naive``: SDF rendering with (and without) the boundary warp.

Bangaru et al. 2022. The SDF lives in the integrator
(Python cannot add traceable shapes); meshes of the scene render too and the
nearer hit wins. The pixel integral is the box filter over each pixel,
whatever the film's rfilter says. Math: ``rvs_mi.sdf``.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from rvs_mi.errors import UserError
from rvs_mi.sdf import render as R
from rvs_mi.sdf.grid import GridSDF
from rvs_mi.sdf.sources import AnalyticSDF

SHADINGS = ("emissive", "diffuse")
EPSILON_ALL = 1e-3      # default epsilon with top_k = 0
EPSILON_TOP_K = 2e-2    # default epsilon with top_k >= 2


def _vec3(props, name, default):
    if name not in props:
        return default
    v = props[name]
    try:
        return [float(c) for c in v]
    except TypeError:
        return [float(v)] * 3


class SDFIntegrator(mi.ad.integrators.common.ADIntegrator):
    warp = True

    def __init__(self, props):
        super().__init__(props)
        self.gamma = float(props.get("gamma", 3.0))
        if not self.gamma > 2:
            raise UserError(f"gamma must be > 2 (got {self.gamma})")
        self.lambda_d = float(props.get("lambda_d", 0.1))
        if not self.lambda_d > 0:
            raise UserError(f"lambda_d must be > 0 (got {self.lambda_d})")
        self.top_k = int(props.get("top_k", 0))
        if self.top_k < 0 or self.top_k == 1:
            raise UserError(f"top_k must be 0 (all points) or >= 2 (got {self.top_k})")
        # The pad of S: small with all points; a top-k subset's shifted weights
        # (Eq. 14) need a larger one to stay stable where tracer points cluster.
        self.epsilon = float(props.get("epsilon", EPSILON_ALL if self.top_k == 0 else EPSILON_TOP_K))
        if not self.epsilon > 0:
            raise UserError(f"epsilon must be > 0 (got {self.epsilon})")
        self.max_steps = int(props.get("max_steps", 64))
        if self.max_steps < 1:
            raise UserError(f"max_steps must be >= 1 (got {self.max_steps})")
        self.shading = str(props.get("shading", "emissive"))
        if self.shading not in SHADINGS:
            raise UserError(f"shading must be emissive or diffuse (got {self.shading!r})")

        shape = props.get("sdf_shape", None) if "sdf_shape" in props else None
        volume = props.get("sdf", None) if "sdf" in props else None
        if volume is not None and shape is not None:
            raise UserError("give either sdf_shape or an <volume name=\"sdf\">, not both")
        if volume is not None:
            if not isinstance(volume, mi.Volume):
                raise UserError("'sdf' must be a <volume type=\"gridvolume\">")
            self.source = GridSDF(volume)
        elif shape is not None:
            self.source = AnalyticSDF(
                str(shape), _vec3(props, "sdf_center", [0.0, 0.0, 0.0]),
                float(props.get("sdf_radius", 1.0)), float(props.get("sdf_minor_radius", 0.25)),
                _vec3(props, "sdf_half_extents", [0.5, 0.5, 0.5]))
        else:
            raise UserError("missing SDF: set <string name=\"sdf_shape\" value=\"sphere|torus|box\"/> "
                            "or add <volume name=\"sdf\" type=\"gridvolume\">")

        self.albedo_volume = None
        self.albedo = mi.Color3f(0.8)
        if "albedo" in props:
            a = props["albedo"]
            if isinstance(a, mi.Volume):
                if a.channel_count() != 3:
                    raise UserError(f"albedo volume must have 3 channels (got {a.channel_count()})")
                self.albedo_volume = a
            elif isinstance(a, mi.Object):
                raise UserError("albedo must be an <rgb> value or a 3-channel <volume>")
            else:
                try:
                    vals = [float(c) for c in a]
                except TypeError:
                    vals = [float(a)] * 3
                if len(vals) != 3:
                    raise UserError(f"albedo must have 3 channels (got {len(vals)})")
                self.albedo = mi.Color3f(*vals)

    # --------------------------------------------------------------- traversal
    def traverse(self, cb):
        self.source.traverse(cb)
        if self.albedo_volume is not None:
            cb.put("albedo", self.albedo_volume, mi.ParamFlags.Differentiable)
        else:
            cb.put("albedo", self.albedo, mi.ParamFlags.Differentiable)

    def parameters_changed(self, keys=[]):
        self.source.parameters_changed()

    # --------------------------------------------------------------- rendering
    def render(self, scene, sensor=0, seed=0, spp=0, develop=True, evaluate=True):
        with dr.suspend_grad():
            return R.render_sdf(self, scene, sensor, seed, spp, primal=True)

    def render_forward(self, scene, params, sensor=0, seed=0, spp=0):
        with dr.resume_grad():
            image = R.render_sdf(self, scene, sensor, seed, spp, primal=False)
            dr.forward_to(image, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
            return dr.grad(image)

    def render_backward(self, scene, params, grad_in, sensor=0, seed=0, spp=0):
        with dr.resume_grad():
            image = R.render_sdf(self, scene, sensor, seed, spp, primal=False)
            dr.set_grad(image, grad_in)
            dr.enqueue(dr.ADMode.Backward, image)
            dr.traverse(dr.ADMode.Backward)
        dr.eval()

    def render_pixels(self, scene, sensor, pixels, seed=0, spp=0):
        """Pixels ``pixels`` (mi.UInt32, row-major film indices) as an (N, C) tensor
        carrying the AD graph of the warped estimator (``rvs_mi.sampling``'s sparse path)."""
        return R.render_sdf(self, scene, sensor, seed, spp, primal=False, pixels=pixels)

    def sample(self, mode, scene, sampler, ray, depth=None, δL=None, δaovs=None,
               state_in=None, active=True, **kwargs):
        raise UserError(f"{type(self).__name__} renders whole images only (use mi.render)")

    # ---------------------------------------------------------------- shading
    def radiance(self, scene, proj, u, ls, use_warp):
        return R.shade(self, scene, proj, u, ls, use_warp)

    def albedo_at(self, x):
        if self.albedo_volume is None:
            return mi.Color3f(self.albedo)
        it = dr.zeros(mi.Interaction3f)
        it.p = x
        return mi.Color3f(self.albedo_volume.eval(it))

    def surface_radiance(self, scene, x, d, ls, active):
        albedo = self.albedo_at(x)
        if self.shading == "emissive":
            return albedo
        _, g = self.source.eval(x, 1)
        n = dr.normalize(g)
        return R.lambert(self, scene, x, n, albedo, ls, active)

    def other_radiance(self, scene, si, ray, ls, active):
        em = si.emitter(scene, active)
        L = dr.select(active, em.eval(si, active), 0.0)
        if self.shading == "diffuse":
            act = active & si.is_valid()
            bsdf = si.bsdf(ray)
            ds, em_w, vis = R.direct_light(self, scene, si.p, si.n, ls, act)
            val = bsdf.eval(mi.BSDFContext(), si, si.to_local(ds.d), act)
            L += dr.select(act & vis, val * em_w, 0.0)
        return L

    def to_string(self):
        return (f"{type(self).__name__}[gamma={self.gamma}, lambda_d={self.lambda_d}, "
                f"epsilon={self.epsilon}, top_k={self.top_k}, max_steps={self.max_steps}, "
                f"shading={self.shading}]")


class SDFReparamIntegrator(SDFIntegrator):
    """Boundary-warp reparameterization (Bangaru et al. 2022)."""
    warp = True


class SDFNaiveIntegrator(SDFIntegrator):
    """Same renderer and primal image, plain AD (no warp): IDR-style gradients."""
    warp = False


PLUGINS = {"sdf_reparam": SDFReparamIntegrator, "sdf_naive": SDFNaiveIntegrator}
