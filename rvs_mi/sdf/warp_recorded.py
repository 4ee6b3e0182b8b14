"""The warp from recorded tracer points: the k largest weights (Eq. 14) or all of them.

``trace.sphere_trace`` records every point of a ray; the trapezoid weights
w^q_i (Eq. 13) select the k largest per lane (top_k ≥ 2), shifted by the
k-th: w̄_i = w^q_i − w^q_(k). With top_k = 0 (or ≥ the point count) every
point is kept unshifted, which is the sum ``warp_streaming`` forms without
recording. Each kept slot keeps its source evaluation for AD, so memory
grows with k. Terms and sums: :mod:`.warp`.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .trace import offset
from .warp import W0, Warp, WarpSums, fade_of, point_velocity, point_weight

C_REL = 1e-3   # relative part of the zero-velocity weight: w_0 = W0 + C_REL·max_i w^q_i


def recorded_warp(source, proj, trace, ray, opts) -> Warp:
    """V and div V (value 0, θ-derivative) of the rays ``ray`` from the points of ``trace``,
    with the ``opts.top_k`` largest weights (all with 0)."""
    ray = dr.detach(ray)
    sel, shift_slot = _selection(trace, opts)
    slots = [_slot(source, proj, trace, ray, ij, opts) for ij in sel]
    if shift_slot is None:
        m, dm = 0.0, mi.Vector2f(0.0)
    else:
        m, dm = slots[shift_slot][0], slots[shift_slot][1]
    # Regularizing weight of a zero-velocity point: W0 + c_rel·max_i w^q_i (continuous
    # in u). The relative part keeps V → 0 (instead of float noise) where the
    # top-k weights are nearly equal and their shifted sum cancels.
    top, dtop = slots[0][0], slots[0][1]
    for wq, dwq, _, _ in slots[1:]:
        larger = wq > top
        top, dtop = dr.select(larger, wq, top), dr.select(larger, dwq, dtop)
    sums = WarpSums.start(W0 + C_REL * top, C_REL * dtop)
    for wq, dwq, P, divP in slots:
        sums = sums.add(wq - m, dwq - dm, P, divP)         # w̄ = w^q − w^q_(k)   (Eq. 14)
    V, div = sums.warp(*_fade(source, trace, ray))
    return Warp(V=V, div=div, weight_sum=sums.W, kept=len(sel))


def _selection(trace, opts):
    """Point index per kept slot (UInt32 per lane) and the slot whose weight shifts the rest
    (None: all points, unshifted)."""
    n, top_k = trace.n, opts.top_k
    with dr.suspend_grad():
        # Trapezoid weights of every point (Eq. 13), primal.
        points = [trace.point(i) for i in range(n)]
        wq = []
        for i in range(n):
            w = dr.power(points[i].S, -opts.gamma)
            wq.append(w * 0.5 * (points[min(i + 1, n - 1)].t - points[max(i - 1, 0)].t))
        if top_k == 0 or top_k >= n:
            sel = [dr.full(mi.UInt32, i, dr.width(trace.t_last)) for i in range(n)]
            shift_slot = None
        else:
            sel = _topk(wq, top_k)
            shift_slot = top_k - 1
        dr.eval(*sel)
    return sel, shift_slot


def _topk(values, k):
    """Indices (as lists of UInt32 arrays) of the k largest per lane, sorted descending."""
    vals = [dr.full(mi.Float, -1.0, dr.width(values[0])) for _ in range(k)]
    idx = [dr.zeros(mi.UInt32, dr.width(values[0])) for _ in range(k)]
    for i, v in enumerate(values):
        cv, ci = mi.Float(v), dr.full(mi.UInt32, i, dr.width(v))
        for s in range(k):   # insertion: carry the smaller one down
            swap = cv > vals[s]
            nv, ni = dr.select(swap, cv, vals[s]), dr.select(swap, ci, idx[s])
            cv, ci = dr.select(swap, vals[s], cv), dr.select(swap, idx[s], ci)
            vals[s], idx[s] = nv, ni
    return idx


def _slot(source, proj, trace, ray, ij, opts):
    """(w^q, ∇_u w^q, P, div P) of point ``ij`` (UInt32 per lane) of every lane."""
    with dr.suspend_grad():
        im, ip = dr.maximum(mi.Int32(ij) - 1, 0), dr.minimum(ij + 1, trace.n - 1)
        here, before, after = trace.point(ij), trace.point(mi.UInt32(im)), trace.point(ip)
        x, dx = ray.point(here.t, here.dt)
        f, g, H = source.eval(x, 2)
        f, g, H = dr.detach(f) + offset(source, opts), dr.detach(g), dr.detach(H)   # traced f + τ
        wq, dwq, Hdx = point_weight(f, g, H, here.S, ray, dx, (before.t, before.dt),
                                    (after.t, after.dt), opts.gamma, opts.lambda_d)
    P, divP = point_velocity(source, proj, x, dx, g, Hdx)
    return wq, dwq, P, divP


def _fade(source, trace, ray):
    """φ and ∇_u φ (``warp.fade_of``) from the recorded point of smallest (traced) f."""
    with dr.suspend_grad():
        f_min = trace.point(0).f
        i_min = dr.zeros(mi.UInt32, dr.width(f_min))
        for i in range(1, trace.n):
            fi = trace.point(i).f
            smaller = fi < f_min
            f_min = dr.select(smaller, fi, f_min)
            i_min = dr.select(smaller, i, i_min)
        nearest = trace.point(i_min)
        x, dx = ray.point(nearest.t, nearest.dt)
        _, g = source.eval(x, 1)
        g = dr.detach(g)
        df_min = [dr.dot(g, dx[k]) for k in range(2)]
        nonempty = trace.point(trace.n - 1).t > trace.point(0).t
    return fade_of(source, f_min, df_min, nonempty)
