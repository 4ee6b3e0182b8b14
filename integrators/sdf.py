"""``sdf_reparam`` and ``sdf_naive``: SDF rendering with (and without) the boundary warp.

Bangaru et al. 2022. The SDF lives in the integrator
(Python cannot add traceable shapes); meshes of the scene render too and the
nearer hit wins. The pixel integral is the box filter over each pixel,
whatever the film's rfilter says. Math: ``rvs_mi.sdf``.

This module parses the properties and hands them to the renderer in
``rvs_mi.sdf`` (options: ``rvs_mi.sdf.options``; image: ``rvs_mi.sdf.render``).
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from rvs_mi import passes
from rvs_mi.errors import UserError
from rvs_mi.scene import BASE_INTEGRATOR_PROPERTIES, prop, refuse_properties
from rvs_mi.sdf.grid import SPLINES, GridSDF
from rvs_mi.sdf.options import SDFOptions
from rvs_mi.sdf.render import render_sdf
from rvs_mi.sdf.shading import Albedo
from rvs_mi.sdf.sources import AnalyticSDF

#: Properties of each analytic ``sdf_shape`` (the others are refused for that shape).
_SHAPE_PROPERTIES = {"sphere": ("sdf_center", "sdf_radius"),
                     "torus": ("sdf_center", "sdf_radius", "sdf_minor_radius"),
                     "box": ("sdf_center", "sdf_half_extents")}
_ANALYTIC = ("sdf_center", "sdf_radius", "sdf_minor_radius", "sdf_half_extents")


def _source(props):
    """The SDF source: a grid volume ``sdf`` or the analytic ``sdf_shape``."""
    shape = prop(props, "sdf_shape", str, None)
    volume = props.get("sdf", None) if "sdf" in props else None
    if volume is not None and shape is not None:
        raise UserError("give either sdf_shape or an <volume name=\"sdf\">, not both")
    if volume is not None:
        if not isinstance(volume, mi.Volume):
            raise UserError("'sdf' must be a <volume type=\"gridvolume\">")
        refuse_properties(props, _ANALYTIC, "applies to an analytic sdf_shape, not to an <volume name=\"sdf\">")
        return GridSDF(volume, prop(props, "sdf_spline", str, "interpolating", choices=SPLINES))
    refuse_properties(props, ["sdf_spline"], "applies to a grid SDF (<volume name=\"sdf\">)")
    if shape is not None:
        if shape not in _SHAPE_PROPERTIES:
            raise UserError(f"unknown sdf_shape {shape!r}; expected one of {', '.join(_SHAPE_PROPERTIES)}")
        refuse_properties(props, [n for n in _ANALYTIC if n not in _SHAPE_PROPERTIES[shape]],
                          f"does not apply to sdf_shape {shape!r}")
        return AnalyticSDF(
            shape, prop(props, "sdf_center", "vec3", [0.0, 0.0, 0.0]),
            prop(props, "sdf_radius", float, 1.0), prop(props, "sdf_minor_radius", float, 0.25),
            prop(props, "sdf_half_extents", "vec3", [0.5, 0.5, 0.5]))
    refuse_properties(props, _ANALYTIC, "needs sdf_shape")
    raise UserError("missing SDF: set <string name=\"sdf_shape\" value=\"sphere|torus|box\"/> "
                    "or add <volume name=\"sdf\" type=\"gridvolume\">")


def _albedo(props):
    """The ``albedo`` property: an RGB value, one number or a 3-channel volume (default 0.8 gray)."""
    if "albedo" not in props:
        return Albedo()
    T = mi.Properties.Type
    if props.type("albedo") in (T.Object, T.ResolvedReference, T.Reference):
        a = props["albedo"]
        if isinstance(a, mi.Volume):
            if a.channel_count() != 3:
                raise UserError(f"albedo volume must have 3 channels (got {a.channel_count()})")
            return Albedo(volume=a)
        raise UserError("albedo must be an <rgb> value or a 3-channel <volume>")
    return Albedo(mi.Color3f(*prop(props, "albedo", "vec3")))


class SDFIntegrator(mi.ad.integrators.common.ADIntegrator):
    warp = True

    def __init__(self, props):
        refuse_properties(props, BASE_INTEGRATOR_PROPERTIES, "has no effect on this integrator")
        super().__init__(props)
        self.options = SDFOptions.from_properties(props, warp=type(self).warp)
        self.pass_rays = passes.read_pass_rays(props, passes.SDF_PASS_RAYS)
        self.source = _source(props)      # replaced by rvs_mi.sdf.neural.attach_neural_sdf
        self.albedo = _albedo(props)

    # --------------------------------------------------------------- traversal
    def traverse(self, cb):
        self.source.traverse(cb)
        self.albedo.traverse(cb)

    def parameters_changed(self, keys=[]):
        self.source.parameters_changed()

    def jit_objects(self):
        """The objects holding this integrator's arrays (``rvs_mi.traversal``)."""
        return {"source": self.source, "albedo": self.albedo}

    # --------------------------------------------------------------- rendering
    # Images of more than pass_rays samples render in passes of whole rows (rvs_mi.passes).
    def render(self, scene, sensor=0, seed=0, spp=0, develop=True, evaluate=True):
        with dr.suspend_grad():
            return self._image(scene, sensor, seed, spp, dr.ADMode.Primal)

    def render_forward(self, scene, params, sensor=0, seed=0, spp=0):
        return self._image(scene, sensor, seed, spp, dr.ADMode.Forward)

    def render_backward(self, scene, params, grad_in, sensor=0, seed=0, spp=0):
        self._image(scene, sensor, seed, spp, dr.ADMode.Backward, grad_in)
        dr.eval()

    def _image(self, scene, sensor, seed, spp, mode, grad_in=None):
        if isinstance(sensor, int):
            sensor = scene.sensors()[sensor]
        spp = spp or sensor.sampler().sample_count()
        film = sensor.film()
        width, height = (int(v) for v in film.crop_size())
        primal = mode == dr.ADMode.Primal
        bands = passes.plan(width, height, spp, self.pass_rays)
        if not passes.one_pass(bands, spp):
            return passes.pixel_passes(
                lambda pixels, sampler, samples: self._render(scene, sensor, seed, samples, primal, pixels, sampler,
                                                              whole_rows=True),
                sensor, spp, bands, seed, mode, grad_in)
        with dr.resume_grad(when=not primal):
            image = self._render(scene, sensor, seed, spp, primal)
            if mode == dr.ADMode.Forward:
                dr.forward_to(image, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
                return dr.grad(image)
            if mode == dr.ADMode.Backward:
                dr.set_grad(image, grad_in)
                dr.enqueue(dr.ADMode.Backward, image)
                dr.traverse(dr.ADMode.Backward)
        return image

    def render_pixels(self, scene, sensor, pixels, seed=0, spp=0):
        """Pixels ``pixels`` (mi.UInt32, row-major film indices) as an (N, C) tensor
        carrying the AD graph of the warped estimator (``rvs_mi.sampling``'s sparse path)."""
        return self._render(scene, sensor, seed, spp, primal=False, pixels=pixels)

    def _render(self, scene, sensor, seed, spp, primal, pixels=None, sampler=None, whole_rows=False):
        """The image, or with ``pixels`` their (N, C) values; ``sampler``: one already seeded
        for ``spp`` samples of each listed pixel (a pass of rvs_mi.passes); ``whole_rows``: the
        pixels are a band of whole rows in row-major order (a pass)."""
        if isinstance(sensor, int):
            sensor = scene.sensors()[sensor]
        if sampler is None and pixels is None:
            sampler, spp = self.prepare(sensor, seed, spp, [])
        elif sampler is None:
            # one wavefront of spp samples per listed pixel
            spp = spp or sensor.sampler().sample_count()
            sampler = sensor.sampler().fork()
            sampler.set_sample_count(spp)
            sampler.set_samples_per_wavefront(spp)
            sampler.seed(seed, dr.width(pixels) * spp)
        return render_sdf(self.options, self.source, self.albedo, scene, sensor, sampler, spp,
                          primal, pixels, whole_rows)

    def sample(self, mode, scene, sampler, ray, depth=None, δL=None, δaovs=None,
               state_in=None, active=True, **kwargs):
        raise UserError(f"{type(self).__name__} renders whole images only (use mi.render)")

    def to_string(self):
        o = self.options
        return (f"{type(self).__name__}[gamma={o.gamma}, lambda_d={o.lambda_d}, "
                f"epsilon={o.epsilon}, top_k={o.top_k}, max_steps={o.max_steps}, "
                f"shading={o.shading}, emitter_samples={o.emitter_samples}]")


class SDFReparamIntegrator(SDFIntegrator):
    """Boundary-warp reparameterization (Bangaru et al. 2022)."""
    warp = True


class SDFNaiveIntegrator(SDFIntegrator):
    """Same renderer and primal image, plain AD (no warp): IDR-style gradients."""
    warp = False


PLUGINS = {"sdf_reparam": SDFReparamIntegrator, "sdf_naive": SDFNaiveIntegrator}
