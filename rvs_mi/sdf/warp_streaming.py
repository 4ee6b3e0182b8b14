"""Sphere trace and the all-points warp (top_k = 0) in one loop, O(1) memory per ray.

Every tracer point adds its trapezoid-weighted term to running sums
(Eq. 13 without a subset), the same sums ``warp_recorded`` forms from
recorded points (``warp.WarpSums``):

    W = w_0 + Σ w^q_i,  B_a = Σ ∂_a w^q_i          (primal)
    A_a = Σ w^q_i P_{i,a},  C = Σ ∂w^q_i·P_i + w^q_i div P_i   (value 0, θ-derivative)

Point i's trapezoid width (t_{i+1} − t_{i−1})/2 is known once the step
from x_i is taken, so nothing is stored per point. A lane stops where its
(t, ∂_a t) no longer change (``trace.fixed_point_not_reached``): every later
point would repeat the last one with weight and weight derivatives exactly 0. The θ-dependence of A
and C enters only through the terms added each iteration (the trace
itself is detached), so Dr.Jit differentiates the loop as a sum loop
(``max_iterations=-1``): forward mode carries the tangents along, reverse
mode replays the loop; no per-step state is kept for the backward pass,
unlike the top-k slots whose point count bounds the memory.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .bundle import Struct
from .trace import finish, fixed_point_not_reached, offset
from .warp import W0, Warp, WarpSums, fade_of, point_S, point_velocity, point_weight


class Nearest(Struct):
    """The tracer point of smallest f so far: its t, f_min and ∇_u f_min = ∇f·∂_a x there."""
    DRJIT_STRUCT = {"t": mi.Float, "f": mi.Float, "df": mi.Vector2f}

    def update(self, t, f, g, dx, first):
        """The nearer of this and the point at t with (f, ∇f, ∂_a x); ``first`` takes the point."""
        smaller = (f < self.f) | first
        df = mi.Vector2f(dr.dot(g, dx[0]), dr.dot(g, dx[1]))
        return Nearest(t=dr.select(smaller, t, self.t), f=dr.select(smaller, f, self.f),
                       df=dr.select(smaller, df, self.df))


def streaming_warp(source, proj, ray, opts, need_div=True):
    """Trace ``ray`` (a ``RayBundle``) for ``opts.max_steps`` points and sum the warp over all.

    Returns (Trace, Warp); the trace records no points. Without ``need_div`` the
    loop forms V alone (W and A): no Hessians, div V = 0.
    """
    ray = dr.detach(ray)
    tau = offset(source, opts)
    sums, nearest, t_last = _trace_and_sum(source, proj, ray, opts, tau, need_div)
    V, div = sums.warp(*fade_of(source, nearest.f, nearest.df, t_last > ray.t0))
    if not need_div:
        div = mi.Float(0.0)
    return finish(source, ray, nearest.t, nearest.f, None, opts, tau), Warp(V=V, div=div, weight_sum=sums.W, kept=0)


@dr.syntax
def _trace_and_sum(source, proj, ray, opts, tau, need_div):
    """The loop on the traced function f + τ (``trace``): (WarpSums, Nearest, t of the last
    point)."""
    n, gamma, lambda_d, epsilon = opts.max_steps, opts.gamma, opts.lambda_d, opts.epsilon
    zero = dr.zeros(mi.Float, dr.width(ray.t0))
    i = mi.UInt32(0)
    t_prev, dt_prev = mi.Float(ray.t0), mi.Vector2f(ray.dt0)       # x_{i−1} (x_0 at the start)
    t_last = mi.Float(ray.t0)
    sums = WarpSums.start(mi.Float(zero) + W0, mi.Vector2f(zero, zero))
    nearest = Nearest(t=mi.Float(zero), f=mi.Float(zero), df=mi.Vector2f(zero, zero))
    moving = dr.full(mi.Bool, True, dr.width(ray.t0))
    while dr.hint((i < n) & moving, max_iterations=-1, label="sdf_trace_warp"):
        with dr.suspend_grad():
            x, dx = ray.point(ray.t, ray.dt)
            if dr.hint(need_div, mode="scalar"):
                f, g, H = source.eval(x, 2)
                H = dr.detach(H)
            else:
                f, g = source.eval(x, 1)
                H = None
            f, g = dr.detach(f) + tau, dr.detach(g)
            # the next point (Eq. 13 needs t_{i+1}; the last point's is its own)
            following = ray.step(f, g, dx)
            last = i + 1 == n
            after = (dr.select(last, ray.t, following.t), dr.select(last, ray.dt, following.dt))
            S = point_S(f, g, ray.d, lambda_d, epsilon)                # Eq. 11 (+ε)
            wq, dwq, Hdx = point_weight(f, g, H, S, ray, dx, (t_prev, dt_prev), after, gamma, lambda_d)
            # free-space fade: the smallest f along the ray and its u-derivative
            nearest = nearest.update(ray.t, f, g, dx, i == 0)
        P, divP = point_velocity(source, proj, x, dx, g, Hdx)
        sums = sums.add(wq, dwq, P, divP)
        t_prev, dt_prev, t_last = ray.t, ray.dt, ray.t
        moving = fixed_point_not_reached(ray, following)
        ray = following
        i += 1
    return sums, nearest, t_last
