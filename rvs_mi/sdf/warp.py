"""The boundary warp V (Eq. 5-8, 11-14) and its divergence in pixel coordinates.

For tracer points x_i(u) (``trace.sphere_trace``) with S_i = |f| + λ_d|∇f·d| + ε:

    w_i   = S_i^(−γ)                                     (Eq. 12)
    w^q_i = w_i · (t_{i+1} − t_{i−1}) / 2                (Eq. 13, ends clamped)
    w̄_i   = w^q_i − w^q_(k)   for the k largest, else 0  (Eq. 14; k = 0: all, no shift)
    G_i   = −ḟ(x_i) ∇f/|∇f|²                             (Eq. 5, ḟ = ∂θ f at fixed x)
    P_i   = (∂x u)ᵀ G_i   (pixels)                       (Eq. 6-7)
    V     = Σ w̄_i P_i / (w_0 + Σ w̄_i)                    (Eq. 13)

w_0 is a tiny weight of a point with zero velocity (W0 + C_REL·max w^q): it
regularizes V where the shifted top-k weights cancel. It does NOT make V → 0
where the traced segment shrinks to nothing at the bound's silhouette (the
weights there are ~Δt·margin^(−γ) ≫ W0 until Δt ~ 1e-8): V would jump from
the nearby silhouette's velocity to 0 there, and the divergence theorem would
lose the background's flux (gradients ∝ L instead of L − L_bg). The free-space
fade φ (``fade``) makes the final warp φ·V continuous over the whole image:

    V_out = φ V,   div V_out = φ div V + ∇_u φ · V.

Divergence (full, nothing dropped), with W = w_0 + Σ w̄_i and ∂_a = ∂/∂u_a:

    div V = Σ_i [ ∇_u w̄_i · (P_i − V) + w̄_i div P_i ] / W
    ∂_a P_{i,a} = −(∇ḟ·∂_a x_i)(J_a·g)/|g|²
                  − ḟ [ (∂_a J_a·g + J_a·H ∂_a x_i)/|g|² − 2 (J_a·g)(g·H ∂_a x_i)/|g|⁴ ]
    ∂_a w^q_i = −γ S_i^(−γ−1) ∂_a S_i · Δ_i + w_i (∂_a t_{i+1} − ∂_a t_{i−1})/2
    ∂_a S_i   = sgn(f)(g·∂_a x_i) + λ_d sgn(g·d)(d·H ∂_a x_i + g·∂_a d)

with J_a = ∇_x u_a, H = ∇²f, ∂_a J_a the derivative of J_a along ∂_a x_i.
ḟ and ∇ḟ are θ-tangents: we evaluate them as f(x;θ) − detach(f(x;θ)) (value
0, derivative ∂θ f), so V and div V are Dr.Jit values equal to 0 whose
derivatives are the warp and its divergence. Everything else is primal.

Two implementations of these sums:

* ``traced_warp`` (top_k = 0, the default): every tracer point, added to
  the sums inside the sphere-tracing loop itself. Nothing is stored per
  point; Dr.Jit differentiates the loop as a sum loop (forward mode carries
  the tangents, reverse mode replays it), so memory is O(1) per ray and the
  kernel holds one loop body whatever ``max_steps`` is.
* ``compute_warp`` (top_k ≥ 2, Eq. 14): the points are recorded by
  ``trace.sphere_trace`` and the k largest weights are gathered into k
  slots. Where a grazing ray's tracer points cluster (many nearly equal
  weights), the shifted weights are small differences and div V gets
  heavy tails; a larger ε (0.02) keeps it usable, at the price of the
  ε-window bias (V averages a window of width ~ε/λ_d around the tangent
  point, one-sided on the hit side).
"""
from __future__ import annotations

from dataclasses import dataclass

from .trace import trace_step

W0 = 1e-4
C_REL = 1e-3


@dataclass
class Warp:
    V: object       # Vector2f, value 0, θ-derivative = warp (pixels)
    div: object     # Float, value 0, θ-derivative = div_u V
    weight_sum: object   # Σ w̄ (diagnostic)
    kept: int       # points whose source evaluation is recorded for AD


def _topk(values, k):
    """Indices (as lists of UInt32 arrays) of the k largest per lane, sorted descending."""
    import drjit as dr
    import mitsuba as mi
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


def compute_warp(source, proj, trace, o, d, do, dd, gamma, lambda_d, top_k) -> Warp:
    import drjit as dr
    import mitsuba as mi
    n = trace.n
    n_lanes = dr.width(o)
    lane = dr.arange(mi.UInt32, n_lanes)
    base = lane * n

    with dr.suspend_grad():
        def at(buf, i):
            return dr.gather(mi.Float, buf, base + i)

        # Trapezoid weights of every point (Eq. 13), primal.
        t = [at(trace.t, i) for i in range(n)]
        wq = []
        for i in range(n):
            w = dr.power(at(trace.S, i), -gamma)
            wq.append(w * 0.5 * (t[min(i + 1, n - 1)] - t[max(i - 1, 0)]))
        if top_k == 0 or top_k >= n:
            sel = [dr.full(mi.UInt32, i, n_lanes) for i in range(n)]
            shift_slot = None
        else:
            sel = _topk(wq, top_k)
            shift_slot = top_k - 1
        dr.eval(*sel)

    o_, d_ = dr.detach(o), dr.detach(d)
    do_ = [dr.detach(do[0]), dr.detach(do[1])]
    dd_ = [dr.detach(dd[0]), dr.detach(dd[1])]

    slots = []
    for j, ij in enumerate(sel):
        with dr.suspend_grad():
            im, ip = dr.maximum(mi.Int32(ij) - 1, 0), dr.minimum(ij + 1, n - 1)
            ti = dr.gather(mi.Float, trace.t, base + ij)
            tm, tp = dr.gather(mi.Float, trace.t, base + mi.UInt32(im)), dr.gather(mi.Float, trace.t, base + ip)
            dti = [dr.gather(mi.Float, b, base + ij) for b in (trace.dtx, trace.dty)]
            dtm = [dr.gather(mi.Float, b, base + mi.UInt32(im)) for b in (trace.dtx, trace.dty)]
            dtp = [dr.gather(mi.Float, b, base + ip) for b in (trace.dtx, trace.dty)]
            x = o_ + ti * d_
            dx = [do_[a] + dti[a] * d_ + ti * dd_[a] for a in range(2)]
            f, g, H = source.eval(x, 2)
            f, g, H = dr.detach(f), dr.detach(g), dr.detach(H)
            S = dr.gather(mi.Float, trace.S, base + ij)
            wq_j, dwq, Hdx = _point_weight(f, g, H, S, d_, dx, dd_, tm, tp, dtm, dtp, gamma, lambda_d)
        P, divP = _point_velocity(source, proj, x, dx, g, Hdx)
        slots.append((wq_j, dwq, P, divP))

    if shift_slot is None:
        m, dm = 0.0, [0.0, 0.0]
    else:
        m, dm = slots[shift_slot][0], slots[shift_slot][1]
    # Regularizing weight of a zero-velocity point: W0 + c_rel·max_i w^q_i (continuous
    # in u). The relative part keeps V → 0 (instead of float noise) where the
    # top-k weights are nearly equal and their shifted sum cancels.
    top, dtop = slots[0][0], list(slots[0][1])
    for wq_j, dwq, _, _ in slots[1:]:
        larger = wq_j > top
        top = dr.select(larger, wq_j, top)
        dtop = [dr.select(larger, dwq[a], dtop[a]) for a in range(2)]
    W = W0 + C_REL * top
    A = [0.0, 0.0]
    B = [C_REL * dtop[0], C_REL * dtop[1]]
    C = 0.0
    for wq_j, dwq, P, divP in slots:
        wb = wq_j - m
        dwb = [dwq[a] - dm[a] for a in range(2)]
        W = W + wb
        for a in range(2):
            A[a] = A[a] + wb * P[a]
            B[a] = B[a] + dwb[a]
        C = C + dwb[0] * P[0] + dwb[1] * P[1] + wb * divP
    V, div = _faded_warp(A, B, C, W, *fade(source, trace, o_, d_, do_, dd_))
    return Warp(V=V, div=div, weight_sum=W, kept=len(sel))


def _faded_warp(A, B, C, W, phi, dphi):
    """V = A/W and div V = (C − V·B)/W (Eq. 13 and its u-divergence), times the free-space
    fade: V·φ(u), div·φ + ∇φ·V (see ``fade``)."""
    import mitsuba as mi
    V = mi.Vector2f(A[0] / W, A[1] / W)
    div = (C - V.x * B[0] - V.y * B[1]) / W
    div = phi * div + dphi[0] * V.x + dphi[1] * V.y
    return mi.Vector2f(phi * V.x, phi * V.y), div


def fade(source, trace, o, d, do, dd):
    """φ(u) = 1 − smoothstep((f_min − a)/(b − a)) and ∇_u φ (primal, detached).

    f_min = min_i f(x_i) over the tracer points of the ray, [a, b] =
    ``source.fade_range()``. Without the fade V jumps to 0 where the ray
    leaves the bounding volume of the trace (the warp of a ray just inside
    it is the silhouette velocity of the nearby surface, of a ray just
    outside 0): the divergence theorem then misses the flux of the radiance
    behind that bound (the background) and the gradient lacks its −L_bg·v
    share. φ = 1 wherever the ray passes within a of the surface (all
    silhouettes), 0 where f_min ≥ b, which holds on the bound's own
    silhouette (the bound keeps ≥ b from the surface), so φ·V is continuous
    over the whole image. f_min is continuous in u (the tracer points are)
    and ∇_u f_min = ∇f(x*)·∂_u x* at the minimizing point x*.
    """
    import drjit as dr
    import mitsuba as mi
    n = trace.n
    base = dr.arange(mi.UInt32, dr.width(o)) * n
    with dr.suspend_grad():
        f_min = dr.gather(mi.Float, trace.f, base)
        i_min = dr.zeros(mi.UInt32, dr.width(o))
        for i in range(1, n):
            fi = dr.gather(mi.Float, trace.f, base + i)
            smaller = fi < f_min
            f_min = dr.select(smaller, fi, f_min)
            i_min = dr.select(smaller, i, i_min)
        slot = base + i_min
        t = dr.gather(mi.Float, trace.t, slot)
        dt = [dr.gather(mi.Float, trace.dtx, slot), dr.gather(mi.Float, trace.dty, slot)]
        _, g = source.eval(o + t * d, 1)
        g = dr.detach(g)
        df_min = [dr.dot(g, do[k] + dt[k] * d + t * dd[k]) for k in range(2)]
        nonempty = dr.gather(mi.Float, trace.t, base + (n - 1)) > dr.gather(mi.Float, trace.t, base)
    return _fade_of(source, f_min, df_min, nonempty)


def _fade_of(source, f_min, df_min, nonempty):
    """φ = 1 − smoothstep((f_min − a)/(b − a)) and ∇_u φ from ∇_u f_min; φ = 0 where the
    traced segment is empty (the ray misses the bound)."""
    import drjit as dr
    with dr.suspend_grad():
        a, b = source.fade_range()
        x = dr.clip((f_min - a) / (b - a), 0.0, 1.0)
        x = dr.select(nonempty, x, 1.0)
        phi = 1.0 - x * x * (3.0 - 2.0 * x)
        dphi_df = -6.0 * x * (1.0 - x) / (b - a)
        return phi, [dphi_df * df_min[0], dphi_df * df_min[1]]


def _point_weight(f, g, H, S, d, dx, dd, t_prev, t_next, dt_prev, dt_next, gamma, lambda_d):
    """Trapezoid weight w^q = S^(−γ)·(t_{i+1} − t_{i−1})/2 of a tracer point (Eq. 12-13) and
    its u-derivatives ∂_a w^q; also H·∂_a x (primal). ``dx``: ∂_a x of the point."""
    import drjit as dr
    w = dr.power(S, -gamma)
    delta = 0.5 * (t_next - t_prev)
    Hdx = [_matvec(H, dx[a]) for a in range(2)]
    gd = dr.dot(g, d)
    dwq = []
    for a in range(2):
        dS = dr.sign(f) * dr.dot(g, dx[a]) + lambda_d * dr.sign(gd) * (
            dr.dot(d, Hdx[a]) + dr.dot(g, dd[a]))
        dwq.append(-gamma * w / S * dS * delta + w * 0.5 * (dt_next[a] - dt_prev[a]))
    return w * delta, dwq, Hdx


def _point_velocity(source, proj, x, dx, g, Hdx):
    """P = (∂x u)ᵀ G at a tracer point x (Eq. 5-7) and its u-divergence div P.

    Both have value 0 and carry the θ-derivative: ḟ and ∇ḟ are evaluated as
    f(x;θ) − detach(f(x;θ)) at the fixed point x. ``g`` = ∇f(x), ``Hdx`` = H·∂_a x (primal).
    """
    import drjit as dr
    with dr.suspend_grad():
        J = proj.jacobian(x)
        dJ = [proj.jacobian_derivative(x, J, dx[a])[a] for a in range(2)]
        g2 = dr.squared_norm(g)
        Jg = [dr.dot(J[a], g) for a in range(2)]
    fa, ga = source.eval(x, 1)
    fdot = fa - dr.detach(fa)
    gdot = ga - dr.detach(ga)
    P = [-fdot * Jg[a] / g2 for a in range(2)]
    divP = 0.0
    for a in range(2):
        divP = divP - dr.dot(gdot, dx[a]) * Jg[a] / g2 - fdot * (
            (dr.dot(dJ[a], g) + dr.dot(J[a], Hdx[a])) / g2
            - 2.0 * Jg[a] * dr.dot(g, Hdx[a]) / (g2 * g2))
    return P, divP


def _matvec(H, v):
    from .sources import matvec
    return matvec(H, v)


def traced_warp(source, proj, o, d, do, dd, t0, t1, dt0, dt1, n_steps, gamma, lambda_d, epsilon,
                hit_eps):
    """Sphere trace and the all-points warp (top_k = 0) in one loop, O(1) memory per ray.

    Every tracer point adds its trapezoid-weighted term to running sums
    (Eq. 13 without a subset), the same sums ``compute_warp`` forms from
    recorded points:

        W = w_0 + Σ w^q_i,  B_a = Σ ∂_a w^q_i          (primal)
        A_a = Σ w^q_i P_{i,a},  C = Σ ∂w^q_i·P_i + w^q_i div P_i   (value 0, θ-derivative)

    Point i's trapezoid width (t_{i+1} − t_{i−1})/2 is known once the step
    from x_i is taken, so nothing is stored per point. The θ-dependence of A
    and C enters only through the terms added each iteration (the trace
    itself is detached), so Dr.Jit differentiates the loop as a sum loop
    (``max_iterations=-1``): forward mode carries the tangents along, reverse
    mode replays the loop — no per-step state is kept for the backward pass,
    unlike the top-k slots whose point count bounds the memory.

    Returns (t_last, f_last, hit, Warp) with t_last, f_last, hit as in
    ``trace.sphere_trace``.
    """
    import drjit as dr
    import mitsuba as mi
    n = int(n_steps)
    o_, d_ = dr.detach(o), dr.detach(d)
    do_ = [dr.detach(do[0]), dr.detach(do[1])]
    dd_ = [dr.detach(dd[0]), dr.detach(dd[1])]
    t0, t1 = dr.detach(t0), dr.detach(t1)
    dt0 = [dr.detach(dt0[0]), dr.detach(dt0[1])]
    dt1 = [dr.detach(dt1[0]), dr.detach(dt1[1])]
    n_lanes = dr.width(t0)
    zero = dr.zeros(mi.Float, n_lanes)

    def body(i, t, tx, ty, tp, tpx, tpy, f_last, t_last, W, B0, B1, A0, A1, C, fmin, fmx, fmy):
        with dr.suspend_grad():
            x = o_ + t * d_
            dx = [do_[0] + tx * d_ + t * dd_[0], do_[1] + ty * d_ + t * dd_[1]]
            f, g, H = source.eval(x, 2)
            f, g, H = dr.detach(f), dr.detach(g), dr.detach(H)
            gd = dr.dot(g, d_)
            # the next point (Eq. 13 needs t_{i+1}; the last point's is its own)
            tn, txn, tyn = trace_step(t, tx, ty, f, g, dx, t0, t1, dt0, dt1)
            last = i + 1 == n
            te, tex, tey = dr.select(last, t, tn), dr.select(last, tx, txn), dr.select(last, ty, tyn)
            S = dr.abs(f) + lambda_d * dr.abs(gd) + epsilon          # Eq. 11 (+ε)
            wq, dwq, Hdx = _point_weight(f, g, H, S, d_, dx, dd_, tp, te, (tpx, tpy), (tex, tey),
                                         gamma, lambda_d)
            # free-space fade: the smallest f along the ray and its u-derivative
            smaller = (f < fmin) | (i == 0)
            fmin = dr.select(smaller, f, fmin)
            fmx = dr.select(smaller, dr.dot(g, dx[0]), fmx)
            fmy = dr.select(smaller, dr.dot(g, dx[1]), fmy)
        P, divP = _point_velocity(source, proj, x, dx, g, Hdx)
        W = W + wq
        B0, B1 = B0 + dwq[0], B1 + dwq[1]
        A0, A1 = A0 + wq * P[0], A1 + wq * P[1]
        C = C + dwq[0] * P[0] + dwq[1] * P[1] + wq * divP
        return (i + 1, tn, txn, tyn, t, tx, ty, f, t, W, B0, B1, A0, A1, C, fmin, fmx, fmy)

    def cond(i, *_):
        return i < n

    state = (mi.UInt32(0), mi.Float(t0), mi.Float(dt0[0]), mi.Float(dt0[1]),
             mi.Float(t0), mi.Float(dt0[0]), mi.Float(dt0[1]), mi.Float(zero), mi.Float(t0),
             mi.Float(zero) + W0, mi.Float(zero), mi.Float(zero), mi.Float(zero), mi.Float(zero),
             mi.Float(zero), mi.Float(zero), mi.Float(zero), mi.Float(zero))
    (_, _, _, _, _, _, _, f_last, t_last, W, B0, B1, A0, A1, C, fmin, fmx, fmy) = dr.while_loop(
        state, cond, body, label="sdf_trace_warp", max_iterations=-1)
    with dr.suspend_grad():
        hit = (dr.abs(f_last) < hit_eps) & (t_last < t1 - hit_eps) & (t1 > t0)
    V, div = _faded_warp((A0, A1), (B0, B1), C, W, *_fade_of(source, fmin, (fmx, fmy), t_last > t0))
    return t_last, f_last, hit, Warp(V=V, div=div, weight_sum=W, kept=0)
