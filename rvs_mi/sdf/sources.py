"""SDF sources: f(x; θ), ∇f and the Hessian, with θ differentiable.

Every source offers

* ``eval(x, order)`` -> (f, g[, H]): value, world-space gradient ∇f (Vector3f)
  and, for ``order=2``, the Hessian as a Matrix3f. Parameters θ are attached
  (Dr.Jit AD); callers detach x or θ as they need.
* ``interval(o, d, do, dd)`` -> (t0, t1, dt0, dt1, valid): the ray segment
  the sphere tracer covers (a bounding sphere / box), with the u-derivatives
  of both ends, and
* ``traverse(cb)`` / ``parameters_changed()`` for ``mi.traverse``.

Analytic sources (this module): sphere, torus (ring in the plane z = c_z), box.
The grid source is :mod:`.grid`.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError

SHAPES = ("sphere", "torus", "box")
# Free-space fade of the warp (``warp.fade``): from f = FADE_INNER·b to b, with
# b = FADE_REL·size + FADE_ABS (analytic) or GRID_FADE_VOXELS voxels (grids); the
# analytic bound keeps BOUND_MARGIN·b from the surface.
FADE_REL = 0.5
FADE_ABS = 0.02
FADE_INNER = 0.25
BOUND_MARGIN = 1.1
GRID_FADE_VOXELS = 2.0


# --------------------------------------------------------------------------- helpers
def _outer(a, b):
    import mitsuba as mi
    return mi.Matrix3f(a.x * b.x, a.x * b.y, a.x * b.z,
                       a.y * b.x, a.y * b.y, a.y * b.z,
                       a.z * b.x, a.z * b.y, a.z * b.z)


def _diag(x, y, z):
    import mitsuba as mi
    zero = 0.0
    return mi.Matrix3f(x, zero, zero, zero, y, zero, zero, zero, z)


def matvec(H, v):
    """H·v for a (symmetric) Matrix3f H."""
    import mitsuba as mi
    return mi.Vector3f(H[0, 0] * v.x + H[0, 1] * v.y + H[0, 2] * v.z,
                       H[1, 0] * v.x + H[1, 1] * v.y + H[1, 2] * v.z,
                       H[2, 0] * v.x + H[2, 1] * v.y + H[2, 2] * v.z)


def surface_tangent(n, t, d, do, dd):
    """u-derivative of a ray parameter t where the ray meets a fixed surface with normal n.

    x(t) = o + t d on the surface ⇒ n·(∂o + ∂t d + t ∂d) = 0.
    """
    import drjit as dr
    return -(dr.dot(n, do) + t * dr.dot(n, dd)) / dr.dot(n, d)


def sphere_interval(c, R, o, d, do, dd):
    """Segment of the ray inside the sphere (c, R), clipped to t ≥ 0, with u-derivatives."""
    import drjit as dr
    oc = o - c
    b = dr.dot(oc, d)
    disc = b * b - (dr.squared_norm(oc) - R * R)
    valid = disc > 0
    sq = dr.safe_sqrt(disc)
    ta, tb = -b - sq, -b + sq
    valid &= tb > 0
    n_a, n_b = o + ta * d - c, o + tb * d - c
    dta = [surface_tangent(n_a, ta, d, do[k], dd[k]) for k in range(2)]
    dtb = [surface_tangent(n_b, tb, d, do[k], dd[k]) for k in range(2)]
    inside = ta <= 0
    t0 = dr.select(inside, 0.0, ta)
    dt0 = [dr.select(inside, 0.0, dta[k]) for k in range(2)]
    t0 = dr.select(valid, t0, 0.0)
    t1 = dr.select(valid, tb, 0.0)
    dt0 = [dr.select(valid, dt0[k], 0.0) for k in range(2)]
    dt1 = [dr.select(valid, dtb[k], 0.0) for k in range(2)]
    return t0, t1, dt0, dt1, valid


def box_interval(bmin, bmax, o, d, do, dd):
    """Slab test against an axis-aligned box, clipped to t ≥ 0, with u-derivatives."""
    import drjit as dr
    import mitsuba as mi
    inv = dr.rcp(d)
    t_lo = (mi.Vector3f(bmin) - o) * inv
    t_hi = (mi.Vector3f(bmax) - o) * inv
    tn = dr.minimum(t_lo, t_hi)
    tf = dr.maximum(t_lo, t_hi)
    # entry: largest near-slab; exit: smallest far-slab (remember which axis)
    t_in, ax_in = tn.x, mi.UInt32(0)
    t_out, ax_out = tf.x, mi.UInt32(0)
    for k, (a, b) in enumerate(((tn.y, tf.y), (tn.z, tf.z)), start=1):
        ax_in = dr.select(a > t_in, k, ax_in)
        t_in = dr.maximum(t_in, a)
        ax_out = dr.select(b < t_out, k, ax_out)
        t_out = dr.minimum(t_out, b)
    valid = (t_out > dr.maximum(t_in, 0.0))

    def tangent(t, ax, a):
        # t = (b − o_k)/d_k  ⇒  ∂t = −(∂o_k + t ∂d_k)/d_k
        ok = dr.select(ax == 0, do[a].x, dr.select(ax == 1, do[a].y, do[a].z))
        dk = dr.select(ax == 0, dd[a].x, dr.select(ax == 1, dd[a].y, dd[a].z))
        d_k = dr.select(ax == 0, d.x, dr.select(ax == 1, d.y, d.z))
        return -(ok + t * dk) / d_k

    inside = t_in <= 0
    t0 = dr.select(valid, dr.select(inside, 0.0, t_in), 0.0)
    t1 = dr.select(valid, t_out, 0.0)
    dt0 = [dr.select(valid & ~inside, tangent(t_in, ax_in, a), 0.0) for a in range(2)]
    dt1 = [dr.select(valid, tangent(t_out, ax_out, a), 0.0) for a in range(2)]
    return t0, t1, dt0, dt1, valid


# --------------------------------------------------------------------------- analytic
class AnalyticSDF:
    """Sphere, torus or box SDF with differentiable center and sizes."""

    def __init__(self, shape, center, radius=1.0, minor_radius=0.25, half_extents=(0.5,) * 3):
        import mitsuba as mi
        if shape not in SHAPES:
            raise UserError(f"unknown sdf_shape {shape!r}; expected one of {', '.join(SHAPES)}")
        self.shape = shape
        import drjit as dr
        # Opaque from the start, so the first step compiles the same kernels as the rest.
        self.center = dr.opaque(mi.Point3f, [float(v) for v in center])
        self.radius = dr.opaque(mi.Float, float(radius))
        self.minor_radius = dr.opaque(mi.Float, float(minor_radius))
        self.half_extents = dr.opaque(mi.Vector3f, [float(v) for v in half_extents])
        self.check()

    def check(self):
        r = float(np.array(self.radius).ravel()[0])
        if self.shape in ("sphere", "torus") and not r > 0:
            raise UserError(f"sdf_radius must be > 0 (got {r})")
        if self.shape == "torus":
            m = float(np.array(self.minor_radius).ravel()[0])
            if not 0 < m < r:
                raise UserError(f"sdf_minor_radius must be in (0, sdf_radius) (got {m}, radius {r})")
        if self.shape == "box" and not np.all(np.array(self.half_extents) > 0):
            raise UserError("sdf_half_extents must be > 0")

    def traverse(self, cb):
        import mitsuba as mi
        D = mi.ParamFlags.Differentiable
        cb.put("sdf.center", self.center, D)
        if self.shape in ("sphere", "torus"):
            cb.put("sdf.radius", self.radius, D)
        if self.shape == "torus":
            cb.put("sdf.minor_radius", self.minor_radius, D)
        if self.shape == "box":
            cb.put("sdf.half_extents", self.half_extents, D)

    def parameters_changed(self):
        self.check()

    def evaluator(self):
        """The source itself (its evaluations need no shared precomputation)."""
        return self

    def extent_radius(self):
        """Radius about the center that contains the surface (detached Dr.Jit Float)."""
        import drjit as dr
        r = dr.detach(self.radius)
        if self.shape == "sphere":
            return r
        if self.shape == "torus":
            return r + dr.detach(self.minor_radius)
        return dr.norm(dr.detach(self.half_extents))

    def fade_range(self):
        """(a, b): the warp fades from f_min = a to b (``warp.fade``); b ≈ 2-3 pixels at
        typical framings (FADE_REL of the size)."""
        b = FADE_REL * self.extent_radius() + FADE_ABS
        return FADE_INNER * b, b

    def bound_radius(self):
        """Radius of a bounding sphere about the center (a detached Dr.Jit Float).

        Leaves a margin > b (``fade_range``) around the surface, so the warp has
        faded to 0 before the traced segment ends at the bound's silhouette.
        Kept as a Dr.Jit value, not a Python float: a literal that changes with
        the parameters would compile new kernels at every optimization step.
        """
        return self.extent_radius() + BOUND_MARGIN * self.fade_range()[1]

    def interval(self, o, d, do, dd):
        import drjit as dr
        import mitsuba as mi
        c = mi.Point3f(dr.detach(self.center))
        return sphere_interval(c, self.bound_radius(), o, d, do, dd)

    def eval(self, x, order=1):
        import drjit as dr
        import mitsuba as mi
        q = x - self.center
        if self.shape == "sphere":
            L = dr.norm(q)
            f = L - self.radius
            g = q / L
            if order < 2:
                return f, g
            H = (mi.Matrix3f(1.0) - _outer(g, g)) / L
            return f, g, H
        if self.shape == "torus":
            rho = dr.safe_sqrt(q.x * q.x + q.y * q.y)
            rho = dr.maximum(rho, 1e-8)
            e = mi.Vector3f(q.x / rho, q.y / rho, 0.0)
            a = rho - self.radius
            m = dr.safe_sqrt(a * a + q.z * q.z)
            m = dr.maximum(m, 1e-8)
            f = m - self.minor_radius
            g = (a * e + mi.Vector3f(0.0, 0.0, q.z)) / m
            if order < 2:
                return f, g
            z = mi.Vector3f(0.0, 0.0, 1.0)
            H = (_outer(e, e) + _outer(z, z) - _outer(g, g)) / m \
                + (a / (m * rho)) * (_diag(1.0, 1.0, 0.0) - _outer(e, e))
            return f, g, H
        # box
        s = mi.Vector3f(dr.sign(q.x), dr.sign(q.y), dr.sign(q.z))
        qq = dr.abs(q) - self.half_extents
        qp = dr.maximum(qq, 0.0)
        L = dr.norm(qp)
        inner = dr.minimum(dr.maximum(qq.x, dr.maximum(qq.y, qq.z)), 0.0)
        f = L + inner
        outside = L > 0
        Ls = dr.maximum(L, 1e-12)
        g_out = s * qp / Ls
        ax = dr.select((qq.x >= qq.y) & (qq.x >= qq.z), 0, dr.select(qq.y >= qq.z, 1, 2))
        g_in = mi.Vector3f(dr.select(ax == 0, s.x, 0.0), dr.select(ax == 1, s.y, 0.0),
                           dr.select(ax == 2, s.z, 0.0))
        g = dr.select(outside, g_out, g_in)
        if order < 2:
            return f, g
        D = _diag(dr.select(qq.x > 0, 1.0, 0.0), dr.select(qq.y > 0, 1.0, 0.0),
                  dr.select(qq.z > 0, 1.0, 0.0))
        H = dr.select(outside, (D - _outer(g, g)) / Ls, mi.Matrix3f(0.0))
        return f, g, H

