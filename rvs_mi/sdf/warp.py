"""The boundary warp V (Eq. 5-8, 11-14) and its divergence in pixel coordinates.

For tracer points x_i(u) (``trace.sphere_trace``) with S_i = |f| + λ_d|∇f·d| + ε:

    w_i   = S_i^(−γ)                                     (Eq. 12)
    w^q_i = w_i · (t_{i+1} − t_{i−1}) / 2                (Eq. 13, ends clamped)
    w̄_i   = w^q_i − w^q_(k)   for the k largest, else 0  (Eq. 14; k = 0: all, no shift)
    G_i   = −ḟ(x_i) ∇f/|∇f|²                             (Eq. 5, ḟ = ∂θ f at fixed x)
    P_i   = (∂x u)ᵀ G_i   (pixels)                       (Eq. 6-7)
    V     = Σ w̄_i P_i / (w_0 + Σ w̄_i)                    (Eq. 13)

w_0 is a tiny weight of a point with zero velocity (W0, plus C_REL·max w^q in
``warp_recorded``): it regularizes V where the shifted top-k weights cancel.
It does NOT make V → 0 where the traced segment shrinks to nothing at the
bound's silhouette (the weights there are ~Δt·margin^(−γ) ≫ W0 until
Δt ~ 1e-8): V would jump from the nearby silhouette's velocity to 0 there,
and the divergence theorem would lose the background's flux (gradients ∝ L
instead of L − L_bg). The free-space fade φ (``fade_of``) makes the final
warp φ·V continuous over the whole image:

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

This module holds the per-point terms and their sums (``WarpSums``); two
modules form the sums:

* :mod:`.warp_streaming` (top_k = 0, the default): every tracer point, added
  to the sums inside the sphere-tracing loop itself. Nothing is stored per
  point; Dr.Jit differentiates the loop as a sum loop (forward mode carries
  the tangents, reverse mode replays it), so memory is O(1) per ray and the
  kernel holds one loop body whatever ``max_steps`` is.
* :mod:`.warp_recorded` (top_k ≥ 2, Eq. 14): the points are recorded by
  ``trace.sphere_trace`` and the k largest weights are gathered into k
  slots. Where a grazing ray's tracer points cluster (many nearly equal
  weights), the shifted weights are small differences and div V gets
  heavy tails; a larger ε (0.02) keeps it usable, at the price of the
  ε-window bias (V averages a window of width ~ε/λ_d around the tangent
  point, one-sided on the hit side).
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from .bundle import Struct
from .sources import matvec

W0 = 1e-4     # weight of a zero-velocity point (w_0; the recorded warp adds C_REL·max w^q)


@dataclass
class Warp:
    V: object       # Vector2f, value 0, θ-derivative = warp (pixels)
    div: object     # Float, value 0, θ-derivative = div_u V
    weight_sum: object   # Σ w̄ (diagnostic)
    kept: int       # points whose source evaluation is recorded for AD


def point_S(f, g, d, lambda_d, epsilon):
    """S = |f| + λ_d |∇f·d| + ε of a tracer point (Eq. 11, padded by ε)."""
    return dr.abs(f) + lambda_d * dr.abs(dr.dot(g, d)) + epsilon


def point_weight(f, g, H, S, ray, dx, before, after, gamma, lambda_d):
    """Trapezoid weight w^q = S^(−γ)·(t_{i+1} − t_{i−1})/2 of a tracer point (Eq. 12-13) and
    its u-derivatives ∂_a w^q (Vector2f); also H·∂_a x (primal). Without the Hessian ``H``
    (V alone, no div V): (w^q, None, None).

    ``dx``: ∂_a x of the point; ``before``, ``after``: (t, ∂_a t) of its neighbours.
    """
    (t_prev, dt_prev), (t_next, dt_next) = before, after
    w = dr.power(S, -gamma)
    delta = 0.5 * (t_next - t_prev)
    if H is None:
        return w * delta, None, None
    Hdx = [matvec(H, dx[a]) for a in range(2)]
    gd = dr.dot(g, ray.d)
    dwq = []
    for a in range(2):
        dS = dr.sign(f) * dr.dot(g, dx[a]) + lambda_d * dr.sign(gd) * (
            dr.dot(ray.d, Hdx[a]) + dr.dot(g, ray.dd[a]))
        dwq.append(-gamma * w / S * dS * delta + w * 0.5 * (dt_next[a] - dt_prev[a]))
    return w * delta, mi.Vector2f(*dwq), Hdx


def point_velocity(source, proj, x, dx, g, Hdx=None):
    """P = (∂x u)ᵀ G at a tracer point x (Eq. 5-7) and its u-divergence div P (0 without
    ``Hdx``: V alone needs no div P).

    Both have value 0 and carry the θ-derivative: ḟ and ∇ḟ are evaluated as
    f(x;θ) − detach(f(x;θ)) at the fixed point x. ``g`` = ∇f(x), ``Hdx`` = H·∂_a x (primal).
    """
    with dr.suspend_grad():
        J = proj.jacobian(x)
        g2 = dr.squared_norm(g)
        Jg = [dr.dot(J[a], g) for a in range(2)]
    fa, ga = source.eval(x, 1)
    fdot = fa - dr.detach(fa)
    P = mi.Vector2f(*[-fdot * Jg[a] / g2 for a in range(2)])
    if Hdx is None:
        return P, 0.0
    with dr.suspend_grad():
        dJ = [proj.jacobian_derivative(x, J, dx[a])[a] for a in range(2)]
    gdot = ga - dr.detach(ga)
    divP = 0.0
    for a in range(2):
        divP = divP - dr.dot(gdot, dx[a]) * Jg[a] / g2 - fdot * (
            (dr.dot(dJ[a], g) + dr.dot(J[a], Hdx[a])) / g2
            - 2.0 * Jg[a] * dr.dot(g, Hdx[a]) / (g2 * g2))
    return P, divP


class WarpSums(Struct):
    """The sums of Eq. 13 over tracer points i with weights w̄_i:

        W = w_0 + Σ w̄_i,  B_a = Σ ∂_a w̄_i          (primal)
        A_a = Σ w̄_i P_{i,a},  C = Σ ∇w̄_i·P_i + w̄_i div P_i   (value 0, θ-derivative)
    """
    DRJIT_STRUCT = {"W": mi.Float, "B": mi.Vector2f, "A": mi.Vector2f, "C": mi.Float}

    @classmethod
    def start(cls, W, B) -> "WarpSums":
        """No point added yet: W = w_0, B = ∇_u w_0, A = C = 0 (widths of W)."""
        zero = dr.zeros(mi.Float, dr.width(W))
        return cls(W=W, B=B, A=mi.Vector2f(zero, zero), C=mi.Float(zero))

    def add(self, w, dw, P, divP) -> "WarpSums":
        """The sums with point (w̄, ∇_u w̄, P, div P) added (W and A only where ``dw`` is None:
        V without div V)."""
        if dw is None:
            return self.replace(W=self.W + w, A=self.A + w * P)
        return WarpSums(W=self.W + w, B=self.B + dw, A=self.A + w * P,
                        C=self.C + dw.x * P.x + dw.y * P.y + w * divP)

    def warp(self, phi, dphi):
        """V = A/W and div V = (C − V·B)/W (Eq. 13 and its u-divergence), times the free-space
        fade: (φ V, φ div V + ∇φ·V) (see ``fade_of``)."""
        V = mi.Vector2f(self.A.x / self.W, self.A.y / self.W)
        div = (self.C - V.x * self.B.x - V.y * self.B.y) / self.W
        div = phi * div + dphi[0] * V.x + dphi[1] * V.y
        return mi.Vector2f(phi * V.x, phi * V.y), div


def fade_of(source, f_min, df_min, nonempty):
    """φ(u) = 1 − smoothstep((f_min − a)/(b − a)) and ∇_u φ from ∇_u f_min (primal, detached).

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
    and ∇_u f_min = ∇f(x*)·∂_u x* at the minimizing point x*. φ = 0 where
    the traced segment is empty (the ray misses the bound).
    """
    with dr.suspend_grad():
        a, b = source.fade_range()
        x = dr.clip((f_min - a) / (b - a), 0.0, 1.0)
        x = dr.select(nonempty, x, 1.0)
        phi = 1.0 - x * x * (3.0 - 2.0 * x)
        dphi_df = -6.0 * x * (1.0 - x) / (b - a)
        return phi, [dphi_df * df_min[0], dphi_df * df_min[1]]
