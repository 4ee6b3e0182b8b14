"""Capped sphere tracing that records its points and their u-derivatives; shadow rays.

Fixed step count (no early exit), t_{i+1} = clamp(t_i + f(x_i), t0, t1): every
t_i is a continuous function of the pixel position u away from silhouettes,
which is what makes the quadrature warp (Eq. 13) continuous. Points pile up
at the hit point or at t1, where their trapezoid weights vanish.

Alongside t_i we propagate ∂t_i/∂u_a exactly (a forward-mode derivative by
hand): ∂t_{i+1} = ∂t_i + ∇f(x_i)·∂x_i, with ∂x_i = ∂o + ∂t_i d + t_i ∂d
(``RayBundle.step``).
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from .bundle import Struct
from .warp import point_S

# World-space |f| below which the sphere tracer reports a hit.
HIT_EPS = 1e-3


class TracePoints(Struct):
    """Tracer points x_i: t_i, ∂_a t_i, S(x_i) = |f| + λ_d |∇f·d| + ε (Eq. 11) and f(x_i) (the
    warp's free-space fade uses min_i f); n per lane, lane-major (lane·n + i)."""
    DRJIT_STRUCT = {"t": mi.Float, "dt": mi.Vector2f, "S": mi.Float, "f": mi.Float}


@dataclass
class Trace:
    n: int                # points per ray
    t_last: object        # t_{n-1}
    f_last: object        # f(x_{n-1})
    hit: object           # Bool: converged onto the surface before t1
    points: TracePoints | None = None   # all n points of every lane, if recorded

    def point(self, i) -> TracePoints:
        """Point i (int or UInt32 per lane) of every lane."""
        lane = dr.arange(mi.UInt32, dr.width(self.t_last))
        return dr.gather(TracePoints, self.points, lane * self.n + i)


def converged(ray, t_last, f_last):
    """Hit: the last point lies on the surface (|f| < HIT_EPS) before the segment's end."""
    return (dr.abs(f_last) < HIT_EPS) & (t_last < ray.t1 - HIT_EPS) & (ray.t1 > ray.t0)


def sphere_trace(source, ray, opts, record: bool = True) -> Trace:
    """Trace all lanes of ``ray`` (a ``RayBundle``) for ``opts.max_steps`` points (detached).

    ``record=False`` (primal renders) keeps no per-point buffers: only the
    last point is needed, and the buffers take 20 bytes per lane and step.
    """
    with dr.suspend_grad():
        ray = dr.detach(ray)
        n = opts.max_steps
        points = dr.zeros(TracePoints, dr.width(ray.t0) * n) if record else None
        t_last, f_last = _march(source, ray, opts, points)
        return Trace(n, t_last, f_last, converged(ray, t_last, f_last), points)


@dr.syntax
def _march(source, ray, opts, points):
    """(t, f) of the last of ``opts.max_steps`` points; each point scattered into ``points``."""
    n, lambda_d, epsilon = opts.max_steps, opts.lambda_d, opts.epsilon
    slot = dr.arange(mi.UInt32, dr.width(ray.t0)) * n
    i = mi.UInt32(0)
    f_last = dr.zeros(mi.Float, dr.width(ray.t0))
    t_last = mi.Float(ray.t0)
    while dr.hint(i < n, label="sdf_sphere_trace", exclude=[points]):
        x, dx = ray.point(ray.t, ray.dt)
        f, g = source.eval(x, 1)
        f, g = dr.detach(f), dr.detach(g)
        if dr.hint(points is not None, mode="scalar"):
            S = point_S(f, g, ray.d, lambda_d, epsilon)
            dr.scatter(points, TracePoints(t=ray.t, dt=ray.dt, S=S, f=f), slot + i)
        t_last, f_last = ray.t, f
        ray = ray.step(f, g, dx)
        i += 1
    return t_last, f_last


def trace_visibility(source, o, d, tmax, n_steps: int):
    """Shadow-ray test against the SDF: True where the segment [0, tmax] is unoccluded."""
    with dr.suspend_grad():
        o, d, tmax = dr.detach(o), dr.detach(d), dr.detach(tmax)
        zero = [mi.Vector3f(0.0), mi.Vector3f(0.0)]
        t0, t1, _, _, valid = source.interval(o, d, zero, zero)
        return ~(_blocked(source, o, d, t0, dr.minimum(t1, tmax), n_steps) & valid)


@dr.syntax
def _blocked(source, o, d, t0, t1, n_steps):
    """Whether up to ``n_steps`` steps of at least HIT_EPS meet the surface in [t0, t1]."""
    i, t, blocked = mi.UInt32(0), mi.Float(t0), dr.zeros(mi.Bool, dr.width(t0))
    while dr.hint((i < n_steps) & (t < t1) & ~blocked, label="sdf_shadow_trace"):
        f = dr.detach(source.eval(o + t * d, 1)[0])
        blocked |= (f < HIT_EPS) & (t < t1)
        t = t + dr.maximum(f, HIT_EPS)
        i += 1
    return blocked
