"""Radiance along the (warped) primary rays of the SDF integrators, and their albedo.

Per sample u the primary ray's segment through the source's bound (ended at
a nearer mesh) is sphere traced; with the warp on, the tracer points give V
and div V (:mod:`.warp`). The radiance is then taken along the warped ray
through T(u) = u + V, whose SDF hit is differentiable through the implicit
function theorem:

    f(o + t d; θ) = 0  ⇒  t = t̃ − (f − f̃) / (∇f·d)

Shading: ``emissive`` (L = albedo) or ``diffuse`` (Lambertian: the mean of
``emitter_samples`` emitter samples, each with an SDF and mesh shadow ray, no
BSDF sampling or MIS, as Mitsuba's ``direct`` integrator with bsdf_samples = 0);
meshes of the scene shade with their own BSDF and emitters, and the nearer hit
wins. ``ls`` is the list of light samples (2-D) of each shading point.
"""
from __future__ import annotations

import math

import drjit as dr
import mitsuba as mi

from .bundle import RayBundle
from .trace import SHADOW_EPS, sphere_trace, trace_visibility
from .warp_recorded import recorded_warp
from .warp_streaming import streaming_warp

# |∇f·d| floor in the implicit hit derivative ∂t = −∂θf/(∇f·d): near-grazing hits
# (|cos| < 0.05, a sliver next to silhouettes) otherwise give heavy-tailed
# shading derivatives (∝ 1/|∇f·d|) that dominate the variance of the gradient.
GRAZING = 0.05
# Shadow rays start SHADOW_OFFSET · R off the surface (R: the SDF's extent radius), beyond
# the shadow test's own threshold SHADOW_EPS · R.
SHADOW_OFFSET = 5 * SHADOW_EPS


class Albedo:
    """The SDF's albedo: a constant RGB value or a 3-channel volume (the ``albedo`` parameter)."""

    def __init__(self, value=None, volume=None):
        self.value = mi.Color3f(0.8) if value is None else value
        self.volume = volume

    def at(self, x):
        if self.volume is None:
            return mi.Color3f(self.value)
        it = dr.zeros(mi.Interaction3f)
        it.p = x
        return mi.Color3f(self.volume.eval(it))

    def traverse(self, cb):
        cb.put("albedo", self.value if self.volume is None else self.volume, mi.ParamFlags.Differentiable)


def trace_primary(opts, source, scene, proj, u, use_warp, need_div=True):
    """Sphere trace the primary rays through u: (Trace, V, div V), V = div V = 0 without warp
    (div V = 0 too without ``need_div``, where the all-points warp then forms V alone)."""
    with dr.suspend_grad():
        ray = RayBundle.through(proj, source, u)
        # The nearer mesh caps the traced segment (t and its u-derivative).
        si0 = scene.ray_intersect(mi.Ray3f(ray.o, ray.d, 1e30))
        ray = ray.capped(si0.t, si0.n, si0.is_valid() & (si0.t < ray.t1))
    if opts.streams(use_warp):
        # all tracer points, summed while tracing (no per-point buffers)
        trace, wp = streaming_warp(source, proj, ray, opts, need_div)
        return trace, wp.V, wp.div
    trace = sphere_trace(source, ray, opts, record=use_warp)
    if not use_warp:
        return trace, mi.Vector2f(0.0), mi.Float(0.0)
    wp = recorded_warp(source, proj, trace, ray, opts)
    return trace, wp.V, wp.div


def implicit_hit(source, o, d, t):
    """The SDF hit near t on the ray (o, d): value t, θ-derivative −∂θf/(∇f·d) (|∇f·d| floored
    at GRAZING)."""
    fa, ga = source.eval(o + t * d, 1)
    gd = dr.detach(dr.dot(ga, d))
    gd = dr.select(gd >= 0, 1.0, -1.0) * dr.maximum(dr.abs(gd), GRAZING)   # (biased only there)
    return t - (fa - dr.detach(fa)) / gd


def shade(opts, source, albedo, scene, proj, u, ls, use_warp, flux=False):
    """Radiance along the (warped) primary ray through u: (L, V, div, alpha).

    ``flux``: the lanes of a pixel-edge flux, which need V and a detached L only
    (div V = 0, and L has no θ-derivative).
    """
    source = source.evaluator()         # (a grid's control points, computed once here)
    trace, V, div = trace_primary(opts, source, scene, proj, u, use_warp, need_div=not flux)
    with dr.suspend_grad(when=flux):
        L, alpha = _radiance(opts, source, albedo, scene, proj, u + V, trace, ls)
    return L, V, div, alpha


def _radiance(opts, source, albedo, scene, proj, uw, trace, ls):
    """(L, alpha) along the ray through uw (value u, θ-derivative V: T(u, θ)), whose SDF hit
    is at ``trace.t_last``."""
    ow, dw, maxt = proj.ray_simple(uw)
    t_hit = implicit_hit(source, ow, dw, trace.t_last)
    x = ow + t_hit * dw
    ray_w = mi.Ray3f(ow, dw, maxt)
    si = scene.ray_intersect(ray_w)
    sdf_hit = trace.hit & ~(si.is_valid() & (si.t < dr.detach(t_hit)))
    L_sdf = surface_radiance(opts, source, albedo, scene, x, ls, sdf_hit)
    L_other = other_radiance(opts, source, scene, si, ray_w, ls, ~sdf_hit)
    L = dr.select(sdf_hit, L_sdf, L_other)
    alpha = dr.select(sdf_hit | si.is_valid(), 1.0, 0.0)
    return L, alpha


def surface_radiance(opts, source, albedo, scene, x, ls, active):
    """Radiance leaving the SDF surface point x towards the camera."""
    a = albedo.at(x)
    if opts.shading == "emissive":
        return a
    _, g = source.eval(x, 1)
    return lambert(opts, source, scene, x, dr.normalize(g), a, ls, active)


def other_radiance(opts, source, scene, si, ray, ls, active):
    """Radiance along ``ray`` where the SDF is not hit: emitters, and meshes lit directly."""
    em = si.emitter(scene, active)
    L = dr.select(active, em.eval(si, active), 0.0)
    if opts.shading == "diffuse":
        act = active & si.is_valid()
        bsdf = si.bsdf(ray)
        terms = []
        for sample in ls:
            ds, em_w, vis = direct_light(opts, source, scene, si.p, si.n, sample, act)
            val = bsdf.eval(mi.BSDFContext(), si, si.to_local(ds.d), act)
            terms.append(dr.select(act & vis, val * em_w, 0.0))
        L += _mean(terms)
    return L


def _mean(terms):
    """Mean of the per-sample terms (the single term itself for one sample)."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total if len(terms) == 1 else total * (1.0 / len(terms))


def direct_light(opts, source, scene, p, n, ls, active):
    """(ds, emitter weight, visibility) of one emitter sample seen from p with normal n."""
    it = dr.zeros(mi.Interaction3f)
    it.p = p
    it.n = n
    ds, em_w = scene.sample_emitter_direction(it, ls, False, active)
    with dr.suspend_grad():
        offset = SHADOW_OFFSET * source.extent_radius()
        po = dr.detach(p) + offset * dr.detach(n) * dr.sign(dr.dot(dr.detach(n), ds.d))
        dist = dr.detach(ds.dist) * (1.0 - 1e-3)
        # An infinite emitter's ds.dist spans the scene's bounding sphere, which holds the
        # meshes but not the SDF: the SDF shadow ray runs to the end of the SDF's bound.
        infinite = mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Infinite)
        vis = trace_visibility(source, po, dr.detach(ds.d), dr.select(infinite, dr.inf, dist),
                               opts)
        vis &= ~scene.ray_test(mi.Ray3f(po, dr.detach(ds.d), dist), active)
    return ds, em_w, vis


def lambert(opts, source, scene, x, n, albedo, ls, active):
    """Lambertian radiance albedo/π · cos · E at x (normal n), the mean over the emitter
    samples ``ls``."""
    terms = []
    for sample in ls:
        ds, em_w, vis = direct_light(opts, source, scene, x, n, sample, active)
        cos = dr.maximum(dr.dot(n, ds.d), 0.0)
        terms.append(dr.select(vis & active, albedo * (cos / math.pi) * em_w, 0.0))
    return _mean(terms)
