"""Ray bundles: rays as functions of the pixel position u, with their u-derivatives.

A lane's ray x(t) = o + t d has the u-derivatives ∂_a o, ∂_a d (a = x, y) of
``Projection.ray``. The sphere tracer covers the segment [t0, t1] and moves
a point t along it; each of t0, t1, t carries ∂_a as well, so a point's
u-derivative is ∂_a x = ∂_a o + ∂_a t d + t ∂_a d.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .sources import surface_tangent


class Struct:
    """Base of the ``DRJIT_STRUCT`` classes here: fields by keyword, empty arrays otherwise
    (Dr.Jit constructs them without arguments)."""
    DRJIT_STRUCT: dict = {}

    def __init__(self, **values):
        for name, kind in self.DRJIT_STRUCT.items():
            setattr(self, name, values[name] if name in values else kind())

    def replace(self, **values):
        """A copy with the given fields replaced."""
        return type(self)(**{**{name: getattr(self, name) for name in self.DRJIT_STRUCT}, **values})


class RayBundle(Struct):
    """Rays o + t d with ∂_a o, ∂_a d, the traced segment [t0, t1] and a point t on it (each
    with its u-derivatives ∂_a as a Vector2f over a)."""
    DRJIT_STRUCT = {"o": mi.Point3f, "d": mi.Vector3f,
                    "do_x": mi.Vector3f, "do_y": mi.Vector3f, "dd_x": mi.Vector3f, "dd_y": mi.Vector3f,
                    "t0": mi.Float, "t1": mi.Float, "dt0": mi.Vector2f, "dt1": mi.Vector2f,
                    "t": mi.Float, "dt": mi.Vector2f}

    @classmethod
    def through(cls, proj, source, u) -> "RayBundle":
        """The rays through pixel positions u over the source's segment, t at its start."""
        o, d, do_x, do_y, dd_x, dd_y = proj.ray(u)
        t0, t1, dt0, dt1, _ = source.interval(o, d, [do_x, do_y], [dd_x, dd_y])
        dt0, dt1 = mi.Vector2f(*dt0), mi.Vector2f(*dt1)
        return cls(o=o, d=d, do_x=do_x, do_y=do_y, dd_x=dd_x, dd_y=dd_y,
                   t0=t0, t1=t1, dt0=dt0, dt1=dt1, t=mi.Float(t0), dt=mi.Vector2f(dt0))

    @property
    def do(self):
        return [self.do_x, self.do_y]

    @property
    def dd(self):
        return [self.dd_x, self.dd_y]

    def point(self, t, dt):
        """x = o + t d and [∂_x x, ∂_y x] = ∂_a o + ∂_a t d + t ∂_a d of the point at t."""
        x = self.o + t * self.d
        return x, [self.do_x + dt.x * self.d + t * self.dd_x, self.do_y + dt.y * self.d + t * self.dd_y]

    def step(self, f, g, dx) -> "RayBundle":
        """One sphere-tracing step t + f, clamped to [t0, t1], with its u-derivatives
        ∂t + ∇f·∂x (``dx``: ∂_a x of the current point)."""
        tn, dtn = self.t + f, self.dt + mi.Vector2f(dr.dot(g, dx[0]), dr.dot(g, dx[1]))
        over, under = tn >= self.t1, tn <= self.t0
        tn = dr.select(over, self.t1, dr.select(under, self.t0, tn))
        dtn = dr.select(over, self.dt1, dr.select(under, self.dt0, dtn))
        return self.replace(t=tn, dt=dtn)

    def capped(self, t_s, n_s, cap) -> "RayBundle":
        """The segment ended at a fixed surface (ray parameter t_s, normal n_s) where ``cap``:
        t1 = max(t_s, t0), ∂_a t1 from n·(∂o + ∂t d + t ∂d) = 0."""
        dts = mi.Vector2f(*[surface_tangent(n_s, t_s, self.d, do, dd) for do, dd in zip(self.do, self.dd)])
        return self.replace(t1=dr.select(cap, dr.maximum(t_s, self.t0), self.t1),
                            dt1=dr.select(cap, dts, self.dt1))
