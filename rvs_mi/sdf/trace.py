"""Capped sphere tracing that records its points and their u-derivatives.

Fixed step count (no early exit), t_{i+1} = clamp(t_i + f(x_i), t0, t1): every
t_i is a continuous function of the pixel position u away from silhouettes,
which is what makes the quadrature warp (Eq. 13) continuous. Points pile up
at the hit point or at t1, where their trapezoid weights vanish.

Alongside t_i we propagate ∂t_i/∂u_a exactly (a forward-mode derivative by
hand): ∂t_{i+1} = ∂t_i + ∇f(x_i)·∂x_i, with ∂x_i = ∂o + ∂t_i d + t_i ∂d.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Trace:
    n: int                # points per ray
    t: object             # Float, n per lane (lane-major: lane*n + i)
    dtx: object
    dty: object
    S: object             # S(x_i) = |f| + λ_d |∇f·d| + ε      (Eq. 11)
    t_last: object        # t_{n-1}
    f_last: object        # f(x_{n-1})
    hit: object           # Bool: converged onto the surface before t1
    f: object = None      # f(x_i), n per lane (the warp's free-space fade uses min_i f)


def trace_step(t, tx, ty, f, g, dx, t0, t1, dt0, dt1):
    """One sphere-tracing step t + f, clamped to [t0, t1], with its u-derivatives
    ∂t + ∇f·∂x (``dx``: ∂_a x of the current point; ``dt0``/``dt1``: those of the ends)."""
    import drjit as dr
    tn, txn, tyn = t + f, tx + dr.dot(g, dx[0]), ty + dr.dot(g, dx[1])
    over, under = tn >= t1, tn <= t0
    tn = dr.select(over, t1, dr.select(under, t0, tn))
    txn = dr.select(over, dt1[0], dr.select(under, dt0[0], txn))
    tyn = dr.select(over, dt1[1], dr.select(under, dt0[1], tyn))
    return tn, txn, tyn


def sphere_trace(source, o, d, do, dd, t0, t1, dt0, dt1, n_steps: int, lambda_d: float,
                 epsilon: float, hit_eps: float, record: bool = True) -> Trace:
    """Trace all lanes for ``n_steps`` points (detached).

    ``record=False`` (primal renders) keeps no per-point buffers: only the
    last point is needed, and the buffers take 16 bytes per lane and step.
    """
    import drjit as dr
    import mitsuba as mi
    n_lanes = dr.width(t0)
    lane = dr.arange(mi.UInt32, n_lanes)
    size = n_lanes * n_steps if record else 1
    buf_t = dr.zeros(mi.Float, size)
    buf_x = dr.zeros(mi.Float, size)
    buf_y = dr.zeros(mi.Float, size)
    buf_s = dr.zeros(mi.Float, size)
    buf_f = dr.zeros(mi.Float, size)
    o, d, dox, doy, ddx, ddy = (dr.detach(v) for v in (o, d, do[0], do[1], dd[0], dd[1]))
    t0, t1 = dr.detach(t0), dr.detach(t1)
    a0x, a0y, a1x, a1y = (dr.detach(v) for v in (dt0[0], dt0[1], dt1[0], dt1[1]))

    def body(i, t, tx, ty, f_last, t_prev):
        x = o + t * d
        f, g = source.eval(x, 1)
        f, g = dr.detach(f), dr.detach(g)
        if record:
            slot = lane * n_steps + i
            dr.scatter(buf_t, t, slot)
            dr.scatter(buf_x, tx, slot)
            dr.scatter(buf_y, ty, slot)
            dr.scatter(buf_s, dr.abs(f) + lambda_d * dr.abs(dr.dot(g, d)) + epsilon, slot)
            dr.scatter(buf_f, f, slot)
        dx = [dox + tx * d + t * ddx, doy + ty * d + t * ddy]
        tn, txn, tyn = trace_step(t, tx, ty, f, g, dx, t0, t1, (a0x, a0y), (a1x, a1y))
        return i + 1, tn, txn, tyn, f, t

    def cond(i, t, tx, ty, f_last, t_prev):
        return i < n_steps

    with dr.suspend_grad():
        i, t, tx, ty, f_last, t_prev = dr.while_loop(
            (mi.UInt32(0), mi.Float(t0), mi.Float(a0x), mi.Float(a0y), dr.zeros(mi.Float, n_lanes),
             mi.Float(t0)),
            cond, body, labels=("i", "t", "tx", "ty", "f_last", "t_prev"), label="sdf_sphere_trace")
        # the last recorded point: t before the final update (t_{n-1}), as in the buffers
        t_last = t_prev
        hit = (dr.abs(f_last) < hit_eps) & (t_last < t1 - hit_eps) & (t1 > t0)
    return Trace(n_steps, buf_t, buf_x, buf_y, buf_s, t_last, f_last, hit, buf_f)


def trace_visibility(source, o, d, tmax, n_steps: int, hit_eps: float):
    """Shadow-ray test against the SDF: True where the segment [0, tmax] is unoccluded."""
    import drjit as dr
    import mitsuba as mi
    with dr.suspend_grad():
        o, d, tmax = dr.detach(o), dr.detach(d), dr.detach(tmax)
        zero = [mi.Vector3f(0.0), mi.Vector3f(0.0)]
        t0, t1, _, _, valid = source.interval(o, d, zero, zero)
        t1 = dr.minimum(t1, tmax)

        def body(i, t, blocked):
            f, _ = source.eval(o + t * d, 1)
            f = dr.detach(f)
            blocked |= (f < hit_eps) & (t < t1)
            return i + 1, t + dr.maximum(f, hit_eps), blocked

        def cond(i, t, blocked):
            return (i < n_steps) & (t < t1) & ~blocked

        _, _, blocked = dr.while_loop((mi.UInt32(0), mi.Float(t0), dr.zeros(mi.Bool, dr.width(t0))),
                                      cond, body, label="sdf_shadow_trace")
        return ~(blocked & valid)
