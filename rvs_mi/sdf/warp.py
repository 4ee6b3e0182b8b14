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
"""
from __future__ import annotations

from dataclasses import dataclass

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
            gd = dr.dot(g, d_)
            S = dr.gather(mi.Float, trace.S, base + ij)
            w = dr.power(S, -gamma)
            delta = 0.5 * (tp - tm)
            wq_j = w * delta
            Hdx = [_matvec(H, dx[a]) for a in range(2)]
            dwq = []
            for a in range(2):
                dS = dr.sign(f) * dr.dot(g, dx[a]) + lambda_d * dr.sign(gd) * (
                    dr.dot(d_, Hdx[a]) + dr.dot(g, dd_[a]))
                dwq.append(-gamma * w / S * dS * delta + w * 0.5 * (dtp[a] - dtm[a]))
            J = proj.jacobian(x)
            dJ = [proj.jacobian_derivative(x, J, dx[a])[a] for a in range(2)]
            g2 = dr.squared_norm(g)
            Jg = [dr.dot(J[a], g) for a in range(2)]
        # θ-tangents at the fixed point x (value 0, derivative ∂θ f and ∂θ ∇f)
        fa, ga = source.eval(x, 1)
        fdot = fa - dr.detach(fa)
        gdot = ga - dr.detach(ga)
        P = [-fdot * Jg[a] / g2 for a in range(2)]
        divP = 0.0
        for a in range(2):
            dPa = -dr.dot(gdot, dx[a]) * Jg[a] / g2 - fdot * (
                (dr.dot(dJ[a], g) + dr.dot(J[a], Hdx[a])) / g2
                - 2.0 * Jg[a] * dr.dot(g, Hdx[a]) / (g2 * g2))
            divP = divP + dPa
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
    V = mi.Vector2f(A[0] / W, A[1] / W)
    div = (C - V.x * B[0] - V.y * B[1]) / W
    # Free-space fade: V·φ(u), div·φ + ∇φ·V (see ``fade``).
    phi, dphi = fade(source, trace, o_, d_, do_, dd_)
    div = phi * div + dphi[0] * V.x + dphi[1] * V.y
    V = mi.Vector2f(phi * V.x, phi * V.y)
    return Warp(V=V, div=div, weight_sum=W, kept=len(sel))


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
        a, b = source.fade_range()
        x = dr.clip((f_min - a) / (b - a), 0.0, 1.0)
        # an empty segment (the ray misses the bound): no warp
        x = dr.select(dr.gather(mi.Float, trace.t, base + (n - 1)) > dr.gather(mi.Float, trace.t, base), x, 1.0)
        phi = 1.0 - x * x * (3.0 - 2.0 * x)
        dphi_df = -6.0 * x * (1.0 - x) / (b - a)
        slot = base + i_min
        t = dr.gather(mi.Float, trace.t, slot)
        dt = [dr.gather(mi.Float, trace.dtx, slot), dr.gather(mi.Float, trace.dty, slot)]
        _, g = source.eval(o + t * d, 1)
        g = dr.detach(g)
        dphi = [dphi_df * dr.dot(g, do[k] + dt[k] * d + t * dd[k]) for k in range(2)]
    return phi, dphi


def _matvec(H, v):
    from .sources import matvec
    return matvec(H, v)
