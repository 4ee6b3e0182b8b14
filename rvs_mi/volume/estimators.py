"""Colour estimators on a ray: reparameterized Monte Carlo (Eq. 7–8) and quadrature (Eq. 2–3).

Flat-array conventions as in :mod:`rvs_mi.volume.spline`. Radiance values are
lists of channels (e.g. ``[r, g, b]``), each a flat ``Float``.
"""
from __future__ import annotations

import drjit as dr

from .spline import block_index


def rvs_colour(y_f, radiance, samples: int, behind=None):
    """Ĉ = y_f·(1/m')·Σ_i c(t_i) + (1 − y_f)·C_behind  (Eq. 7/8 plus the background).

    ``y_f``: per-ray opacity (size N); ``radiance``: channels at the sampled
    positions (size N·m', block per ray); ``behind``: channels of the radiance
    arriving from behind the volume (size N) or None. Returns channels (size N).
    """
    radiance = list(radiance)
    dr.eval(radiance)           # one kernel for all channels (each block sum evaluates its input)
    out = []
    for j, c in enumerate(radiance):
        mean = dr.block_sum(c, samples) * (1.0 / samples)
        value = y_f * mean
        if behind is not None:
            value = dr.fma(1 - y_f, behind[j], value)
        out.append(value)
    return out


def alpha_weights(sigma, delta, m: int):
    """Alpha-compositing weights w_k = T_k·(1 − exp(−σ_k δ_k)), T_k = exp(−Σ_{j<k} σ_j δ_j).

    (The quadrature of Eq. 2–3 in its standard alpha-compositing form.)
    ``sigma``, ``delta``: flat (N·m). Returns (weights (N·m), transmittance
    after the last point (N)).
    """
    Float = type(sigma)
    Index = dr.uint32_array_t(Float)
    n = dr.width(sigma) // m
    tau = sigma * delta                                   # optical depth of each bin
    before = dr.block_prefix_sum(tau, m)                  # exclusive: Σ_{j<k}
    weights = dr.exp(-before) * (1 - dr.exp(-tau))
    last = dr.arange(Index, n) * m + (m - 1)
    total = dr.gather(Float, before, last) + dr.gather(Float, tau, last)
    return weights, dr.exp(-total)


def quadrature_colour(weights, transmittance, radiance, m: int, behind=None):
    """Ĉ = Σ_k w_k c_k + T_end·C_behind for channels ``radiance`` at the m points (flat N·m)."""
    weighted = [weights * c for c in radiance]
    dr.eval(weighted)           # one kernel for all channels (each block sum evaluates its input)
    out = []
    for j, c in enumerate(weighted):
        value = dr.block_sum(c, m)
        if behind is not None:
            value = dr.fma(transmittance, behind[j], value)
        out.append(value)
    return out


def bin_points(t_near, t_far, m: int, jitter=None):
    """Quadrature points of ``volquad``: m equal bins on [t_n, t_f], one point per bin.

    Point k at t_n + (k + u_k)·δ, δ = L/m, with u_k = ``jitter`` (N·m) or ½.
    Returns (points (N·m), δ (N·m)).
    """
    Float = type(t_near)
    Index = dr.uint32_array_t(Float)
    n = dr.width(t_near)
    ray, k = block_index(Index, n, m)
    t_n = dr.gather(Float, t_near, ray)
    delta = (dr.gather(Float, t_far, ray) - t_n) * (1.0 / m)
    u = 0.5 if jitter is None else jitter
    return dr.fma(Float(k) + u, delta, t_n), delta


def quadrature_bins(spline, length, samples: int):
    """Bin widths of the hierarchical quadrature: the quantile strata of the coarse spline.

    Fine sample i lies in stratum [e_i, e_{i+1}) with e_i = F⁻¹(y_f·i/m')
    (both edges differentiable through the inverse CDF, like the samples),
    e_0 = 0 and e_{m'} = L (``length``, per ray), so Σ_i δ_i = L exactly.
    Computed without gathering neighbouring samples (flat, no index shuffles).
    """
    from .spline import block_index
    Float = type(length)
    Index = dr.uint32_array_t(Float)
    ray, i = block_index(Index, dr.width(length), samples)
    lo_v = Float(i) * (1.0 / samples)
    hi_v = Float(i + 1) * (1.0 / samples)
    lo, _ = spline.sample(lo_v, samples)
    hi, _ = spline.sample(hi_v, samples)
    lo = dr.select(i == 0, 0, lo)
    hi = dr.select(i == samples - 1, dr.gather(Float, length, ray), hi)
    return dr.fmax(hi - lo, 0)
