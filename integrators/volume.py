"""Emission–absorption volume integrators: ``rvs``, ``rvs_hier`` and the ``volquad`` baseline.

Morozov et al. 2024 (Eq. 1–12 and the hierarchical variant). The math
lives in :mod:`rvs_mi.volume` (flat arrays, rays × knots); these classes only
wire it to Mitsuba: the ray's interval through the density grid's box
(clipped by the first scene surface), the two ``volume`` children and the
radiance arriving from behind the volume.

All three are plain-AD integrators (``ADIntegrator``): ``sample()`` contains
no loop, so forward and reverse mode differentiate a short flat graph.
"""
from __future__ import annotations

import math

import drjit as dr
import mitsuba as mi
from mitsuba.ad.integrators.common import ADIntegrator

from rvs_mi import passes
from rvs_mi.errors import UserError  # noqa: F401  (plugins raise it)
from rvs_mi.scene import BASE_INTEGRATOR_PROPERTIES, prop, refuse_properties
from rvs_mi.volume.estimators import (
    alpha_weights,
    bin_points,
    quadrature_colour,
    rvs_colour,
)
from rvs_mi.volume.estimators import quadrature_bins as quantile_bins
from rvs_mi.volume.fields import (
    activate,
    activate_radiance,
    check_activation,
    make_field,
    radiance_rgb,
)
from rvs_mi.volume.spline import (
    Spline,
    block_index,
    knot_positions,
    stratified_uniforms,
)
from rvs_mi.workarounds import no_expand_scatter


def _int(props, name, default, minimum):
    return prop(props, name, int, default, min=minimum)


def _knots(props, name, default):
    """A knot count: >= 2, or 0 for one knot per voxel layer of the density grid."""
    value = prop(props, name, int, default, min=0)
    if value == 1:
        raise UserError(f"{props.plugin_name()}: {name} must be 0 (one knot per voxel) or >= 2 (got 1)")
    return value


class VolumeIntegrator(ADIntegrator):
    """Shared parts: fields, parameters, the ray interval and per-ray random numbers.

    Parameters: ``density_activation`` (none|relu|softplus|exp),
    ``radiance_activation`` (none|relu|clamp|sigmoid, applied to the RGB after
    the SH evaluation), ``jitter`` (bool), ``pass_rays`` (most samples rendered at
    once, :mod:`rvs_mi.passes`; 0: one pass); children ``<volume name="density">`` (1 channel, its box is the
    volume's box) and ``<volume name="radiance">`` (3, 12 or 27 channels).
    """

    def __init__(self, props):
        refuse_properties(props, BASE_INTEGRATOR_PROPERTIES, "has no effect on this integrator")
        super().__init__(props)
        self.activation = check_activation(prop(props, "density_activation", str, "none"))
        self.radiance_activation = check_activation(prop(props, "radiance_activation", str, "none"),
                                                    "radiance")
        self.jitter = prop(props, "jitter", bool, True)
        self.pass_rays = passes.read_pass_rays(props)
        self.density = make_field("density", props.get("density", None), (1,))
        self.radiance = make_field("radiance", props.get("radiance", None), (3, 12, 27))

    # -- Mitsuba parameters ---------------------------------------------------
    def fields(self):
        return {"density": self.density, "radiance": self.radiance}

    def jit_objects(self):
        """The objects holding this integrator's arrays (``rvs_mi.traversal``)."""
        return self.fields()

    def traverse(self, callback):
        for name, field in self.fields().items():
            field.traverse(callback, name)

    def parameters_changed(self, keys=[]):
        for field in self.fields().values():
            field.refresh()

    def aov_names(self):
        return []

    # -- rendering in passes of at most pass_rays samples (rvs_mi.passes) -------
    def render(self, scene, sensor=0, seed=0, spp=0, develop=True, evaluate=True):
        return passes.render(self, super().render, scene, sensor, seed, spp, develop, evaluate)

    def render_forward(self, scene, params, sensor=0, seed=0, spp=0):
        return passes.render_forward(self, super().render_forward, scene, params, sensor, seed, spp)

    def render_backward(self, scene, params, grad_in, sensor=0, seed=0, spp=0):
        # Atomic scatter-adds in the reverse pass (see no_expand_scatter: Dr.Jit's
        # Expand mode made these gradients nondeterministic on LLVM).
        with no_expand_scatter():
            return passes.render_backward(self, super().render_backward, scene, params, grad_in, sensor,
                                          seed, spp)

    # -- helpers ---------------------------------------------------------------
    def interval(self, scene, ray, active):
        """The ray's part inside the density box, clipped by the first surface; C_behind.

        Returns (ray moved to start at the box entry t_n, length L = t_f − t_n,
        C_behind). Positions along the ray are then offsets in [0, L], which
        keeps float32 differences of nearby positions accurate. Rays that miss
        the box (or whose box part is hidden behind a surface) get L = 0, i.e.
        an empty spline with y_f = 0.
        """
        hit, t0, t1 = self.density.interval(ray)
        si = scene.ray_intersect(ray, active)
        t_near = dr.maximum(t0, 0)
        t_far = dr.minimum(dr.minimum(t1, si.t), ray.maxt)
        inside = active & hit & (t_far > t_near)
        t_near = dr.select(inside, t_near, 0)
        length = dr.select(inside, t_far - t_near, 0)
        # Radiance from behind: the surface's emission or the environment
        # (si.emitter() returns the environment for rays that escape).
        behind = si.emitter(scene, active).eval(si, active)
        return mi.Ray3f(dr.fma(ray.d, t_near, ray.o), ray.d), length, behind

    @staticmethod
    def ray_seed(sampler, n):
        """One 32-bit random seed per ray from the render's sampler (seed-reproducible)."""
        lo = mi.UInt32(sampler.next_1d() * 16777216.0)
        hi = mi.UInt32(sampler.next_1d() * 256.0)
        seed = lo | (hi << 24)
        return seed if dr.width(seed) == n else dr.gather(mi.UInt32, seed, dr.zeros(mi.UInt32, n))

    @staticmethod
    def uniforms(seed, count, stream):
        """``count`` uniforms per ray (flat), stream ``stream`` of each ray's seed."""
        ray, k = block_index(mi.UInt32, dr.width(seed), count)
        return mi.sample_tea_float32(dr.gather(mi.UInt32, seed, ray), k + stream * 65536, 4)

    @staticmethod
    def ray_points(ray, t, count):
        """World points o + t·d of flat ``t`` (``count`` per ray) and their directions."""
        owner, _ = block_index(mi.UInt32, dr.width(t) // count, count)
        o = dr.gather(mi.Point3f, ray.o, owner)
        d = dr.gather(mi.Vector3f, ray.d, owner)
        return dr.fma(d, t, o), d

    def knot_count(self, given: int, field=None) -> int:
        """``given`` knots per ray; for 0, one per voxel layer the longest chord of the
        density grid crosses: ⌈√(X² + Y² + Z²)⌉ (at least 2), following the grid's
        current resolution (e.g. after upsampling), like a ray marcher with a step of
        one voxel."""
        if given:
            return given
        field = field or self.density
        if not getattr(field, "is_grid", False):
            raise UserError("knots = 0 (one knot per voxel) needs a grid density field; give a knot count")
        z, y, x = (int(v) for v in field.data.shape[:3])
        return max(2, math.ceil(math.sqrt(x * x + y * y + z * z)))

    def sigma_at(self, field, p):
        return activate(field.eval(p)[0], self.activation)

    def density_spline(self, ray, length, m, field, seed):
        """The spline of ``field``'s density at ``m`` (jittered) knots per ray."""
        t = knot_positions(dr.zeros(mi.Float, dr.width(length)), length, m,
                           self.uniforms(seed, m, 0) if self.jitter else None)
        p, _ = self.ray_points(ray, t, m)
        return Spline(t, self.sigma_at(field, p), m)

    def radiance_at(self, p, d):
        return activate_radiance(radiance_rgb(self.radiance.eval(p), d), self.radiance_activation)

    def properties(self) -> dict:
        """The XML properties this integrator honours, with their values (for exports)."""
        return {"density_activation": self.activation, "radiance_activation": self.radiance_activation,
                "jitter": self.jitter, "pass_rays": self.pass_rays}

    @staticmethod
    def spectrum(channels, active):
        return dr.select(active, mi.Spectrum(channels[0], channels[1], channels[2]), 0)

    def to_string(self):
        return (f"{type(self).__name__}[density={self.density.channels}ch, "
                f"radiance={self.radiance.channels}ch, activation={self.activation}, "
                f"radiance_activation={self.radiance_activation}]")


class RVSIntegrator(VolumeIntegrator):
    """Reparameterized volume sampling (Morozov et al. 2024, Eq. 8).

    Density at ``knots`` points per ray (0: one per voxel, see ``knot_count``) → linear spline → ``samples`` positions
    by the differentiable inverse CDF (stratified if ``stratified``) →
    Ĉ = y_f·mean_i c(t_i) + (1 − y_f)·C_behind. Radiance is queried ``samples``
    times per ray, density ``knots`` times.
    """

    def __init__(self, props):
        super().__init__(props)
        self.knots = _knots(props, "knots", 128)
        self.samples = _int(props, "samples", 8, 1)
        self.stratified = prop(props, "stratified", bool, True)

    def properties(self):
        return {**super().properties(), "knots": self.knots, "samples": self.samples,
                "stratified": self.stratified}

    def sample(self, mode, scene, sampler, ray, δL=None, state_in=None, active=True, **kwargs):
        active = mi.Bool(active)
        ray, length, behind = self.interval(scene, mi.Ray3f(ray), active)
        n, m, ms = dr.width(length), self.knot_count(self.knots), self.samples
        seed = self.ray_seed(sampler, n)

        spline = self.density_spline(ray, length, m, self.density, seed)     # Sec. 3.3

        # Stratified positions t_i = F⁻¹(y_f·v_i), attached to σ (Eq. 8, 12)
        v = stratified_uniforms(self.uniforms(seed, ms, 1), ms, self.stratified)
        t_s, _ = spline.sample(v, ms)
        p_s, d_s = self.ray_points(ray, t_s, ms)
        L = rvs_colour(spline.opacity(), self.radiance_at(p_s, d_s), ms, behind)
        return self.spectrum(L, active), active, [], None


class RVSHierIntegrator(VolumeIntegrator):
    """Hierarchical RVS (Morozov et al. 2024, hierarchical variant): coarse spline → fine positions → quadrature.

    The density at ``coarse_knots`` points per ray (from the optional
    ``<volume name="coarse_density">`` child, else from ``density``) gives the
    spline; ``fine_samples`` stratified positions come from its differentiable
    inverse CDF (not detached: the fine loss trains the coarse density through
    the positions); the full fields are composited at the fine positions, each
    fine sample standing for its stratum [F⁻¹(y_f·i/m'), F⁻¹(y_f·(i+1)/m')) of
    the coarse distribution (first and last bins extended to t_n and t_f, so
    the bins tile the ray). No proposal/interlevel loss.
    """

    def __init__(self, props):
        super().__init__(props)
        self.coarse_knots = _knots(props, "coarse_knots", 64)
        self.fine_samples = _int(props, "fine_samples", 64, 1)
        coarse = props.get("coarse_density", None)
        self.coarse = make_field("coarse_density", coarse, (1,)) if coarse is not None else None

    def properties(self):
        return {**super().properties(), "coarse_knots": self.coarse_knots, "fine_samples": self.fine_samples}

    def fields(self):
        out = super().fields()
        if self.coarse is not None:
            out["coarse_density"] = self.coarse
        return out

    def sample(self, mode, scene, sampler, ray, δL=None, state_in=None, active=True, **kwargs):
        active = mi.Bool(active)
        ray, length, behind = self.interval(scene, mi.Ray3f(ray), active)
        n, mf = dr.width(length), self.fine_samples
        mc = self.knot_count(self.coarse_knots, self.coarse or self.density)
        seed = self.ray_seed(sampler, n)

        spline = self.density_spline(ray, length, mc, self.coarse or self.density, seed)

        u = self.uniforms(seed, mf, 1) if self.jitter else dr.full(mi.Float, 0.5, n * mf)
        t_f, _ = spline.sample(stratified_uniforms(u, mf), mf)      # one per stratum, sorted
        p_f, d_f = self.ray_points(ray, t_f, mf)
        delta = quantile_bins(spline, length, mf)
        weights, transmittance = alpha_weights(self.sigma_at(self.density, p_f), delta, mf)
        L = quadrature_colour(weights, transmittance, self.radiance_at(p_f, d_f), mf, behind)
        return self.spectrum(L, active), active, [], None


class VolQuadIntegrator(VolumeIntegrator):
    """Baseline: standard quadrature (Eq. 2–3, alpha compositing), radiance at every point.

    ``knots`` equal bins on [t_n, t_f], one point per bin (jittered inside its
    bin if ``jitter``, else the bin centre); σ and c at every point;
    Ĉ = Σ_k T_k (1 − e^{−σ_k δ}) c_k + T_end·C_behind. This is the NeRF /
    Mitsuba radiance-field tutorial renderer.
    """

    def __init__(self, props):
        super().__init__(props)
        self.knots = _knots(props, "knots", 128)

    def properties(self):
        return {**super().properties(), "knots": self.knots}

    def sample(self, mode, scene, sampler, ray, δL=None, state_in=None, active=True, **kwargs):
        active = mi.Bool(active)
        ray, length, behind = self.interval(scene, mi.Ray3f(ray), active)
        n, m = dr.width(length), self.knot_count(self.knots)
        seed = self.ray_seed(sampler, n)
        t, delta = bin_points(dr.zeros(mi.Float, n), length, m, self.uniforms(seed, m, 0) if self.jitter else None)
        p, d = self.ray_points(ray, t, m)
        weights, transmittance = alpha_weights(self.sigma_at(self.density, p), delta, m)
        L = quadrature_colour(weights, transmittance, self.radiance_at(p, d), m, behind)
        return self.spectrum(L, active), active, [], None


PLUGINS = {"rvs": RVSIntegrator, "rvs_hier": RVSHierIntegrator, "volquad": VolQuadIntegrator}
