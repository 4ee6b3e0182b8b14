"""Piecewise-linear density spline on a ray, its closed-form opacity and inverse (Morozov et al. 2024, Sec. 3).

Everything here works on *flat* Dr.Jit arrays holding many rays at once: the
knots of ray ``r`` are entries ``r·m … r·m + m − 1`` of a ``Float`` of size
``N·m`` (``m`` knots per ray); samples of ray ``r`` likewise occupy a block of
``m'`` entries. Per-ray sums are ``dr.block_prefix_sum`` / ``dr.block_sum``
over these blocks, per-sample segment look-ups are ``dr.binary_search`` +
``dr.gather``. No Python or Dr.Jit loop runs over knots, so automatic
differentiation (forward and reverse) goes through short, flat graphs.

Notation: knots t_0 < … < t_{m−1} with t_0 = t_n and
t_{m−1} = t_f, spline values σ_k ≥ 0, segment widths h_k = t_{k+1} − t_k,

    Σ(t)  = ∫_{t_n}^t σ̂(s) ds              (trapezoids at knots, quadratic inside)
    F(t)  = 1 − exp(−Σ(t)),   y_f = F(t_f)    (opacity, Eq. 5–6)
    S_k   = Σ(t_k)                            (exclusive prefix sum of segment masses)

Inversion (Eq. 7–8): for v ∈ [0, 1) the position is t = F⁻¹(y_f·v), computed
in Σ-space: Σ* = −log(1 − y_f·v), the segment k with S_k ≤ Σ* < S_{k+1} by a
binary search, and the in-segment root of

    S_k + a·s + (b − a)·s²/(2h) = Σ*,   a = σ_k, b = σ_{k+1}, s = t − t_k,

written without cancellation as s = 2r / (a + sqrt(a² + 2(b − a)·r/h)),
r = Σ* − S_k (stable for constant, rising, falling and zero density).

Gradient through the sampled positions: plain AD through this closed-form
root with the segment index held fixed. The root is an exact function of the
knot values, so its derivative *is* the implicit-function gradient of Eq. 12,
∂t/∂θ = (∂Σ*/∂θ − ∂Σ(t;θ)/∂θ) / σ̂(t), evaluated without dividing by σ̂(t)
(which vanishes at the start of a segment rising from zero density). The
implicit form t = t̃ + (Σ* − Σ(t̃)) / detach(σ̂(t̃)) would need a guard there;
the closed form does not, and costs the same.
"""
from __future__ import annotations

import drjit as dr

#: Σ_f below which a ray counts as empty (y_f = 0): positions fall back to uniform.
SIGMA_EMPTY = 1e-12
#: Densities are capped here after the activation (an opaque wall long before).
SIGMA_MAX = 1e6

_LOG1M_SERIES = 0.1   # below this, −log(1 − x) and 1 − exp(−x) use their Taylor series


def block_index(Index, n_blocks: int, block: int):
    """(block id, index inside the block) for a flat array of ``n_blocks·block`` entries."""
    idx = dr.arange(Index, n_blocks * block)
    owner = idx // block
    return owner, idx - owner * block


def one_minus_exp_neg(x):
    """1 − exp(−x) for x ≥ 0 without cancellation for small x (float32 has no expm1)."""
    # Taylor series x − x²/2 + x³/6 − … up to x⁷ (error < x⁸/8! ≈ 2.5e-13 at x = 0.1)
    series = x * (1 + x * (-1 / 2 + x * (1 / 6 + x * (-1 / 24 + x * (1 / 120 + x * (-1 / 720 + x / 5040))))))
    return dr.select(x < _LOG1M_SERIES, series, 1 - dr.exp(-x))


def target_sigma(v, sigma_far):
    """Σ* = −log(1 − y_f·v), y_f = 1 − exp(−Σ_f), for v ∈ [0, 1] (Σ-space target of Eq. 7–8).

    Large y_f·v: −log((1 − v) + v·exp(−Σ_f)), a sum of two non-negative terms
    (exact even when y_f rounds to 1). Small y_f·v: the series of −log(1 − x).
    The result is clamped to [0, Σ_f] against rounding.
    """
    y_f = one_minus_exp_neg(sigma_far)
    x = y_f * v
    series = x * (1 + x * (1 / 2 + x * (1 / 3 + x * (1 / 4 + x * (1 / 5 + x * (1 / 6 + x * (1 / 7 + x / 8)))))))
    direct = -dr.log(dr.fmax((1 - v) + v * dr.exp(-sigma_far), 1e-38))
    target = dr.select(x < _LOG1M_SERIES, series, direct)
    return dr.clip(target, 0, sigma_far)


def knot_positions(t_near, t_far, m: int, jitter=None):
    """Knots t_0 … t_{m−1} of every ray, flat (size N·m).

    ``t_near``, ``t_far``: per-ray interval (size N). Without ``jitter`` the
    knots are evenly spaced. With ``jitter`` (uniforms of size N·m) the
    interior knots move independently inside their cell,
    t_k = t_n + (k − ½ + u_k)·L/(m − 1), while t_0 = t_n and t_{m−1} = t_f stay
    fixed, so the spline covers the whole interval and knots stay ordered.
    """
    Float = type(t_near)
    Index = dr.uint32_array_t(Float)
    n = dr.width(t_near)
    ray, k = block_index(Index, n, m)
    kf = Float(k)
    if jitter is None:
        frac = kf / (m - 1)
    else:
        interior = (k > 0) & (k < m - 1)
        frac = dr.select(interior, dr.clip((kf - 0.5 + jitter) / (m - 1), 0, 1), kf / (m - 1))
    t_n = dr.gather(Float, t_near, ray)
    t_f = dr.gather(Float, t_far, ray)
    return dr.fma(frac, t_f - t_n, t_n)


class Spline:
    """A piecewise-linear density spline for N rays with m knots each (flat arrays).

    ``t``: knot positions (N·m, non-decreasing per ray), ``sigma``: σ at the
    knots (N·m, ≥ 0, differentiable). Builds the segment masses, the knot
    cumulatives ``S`` and the per-ray totals ``sigma_far`` (Σ_f, size N).
    """

    def __init__(self, t, sigma, m: int):
        if m < 2:
            raise ValueError(f"a spline needs at least 2 knots (got {m})")
        Float = type(t)
        self.Float, self.Index = Float, dr.uint32_array_t(Float)
        self.m = m
        self.n = dr.width(t) // m
        self.t, self.sigma = t, sigma
        ray, k = block_index(self.Index, self.n, m)
        first, last = k == 0, k == m - 1
        # Knot spacings are not differentiable (knots depend on the ray only)
        t_d = dr.detach(t)
        h_next = dr.select(last, 0, dr.gather(Float, t_d, dr.select(last, 0, ray * m + k + 1)) - t_d)
        h_prev = dr.select(first, 0, t_d - dr.gather(Float, t_d, dr.select(first, 0, ray * m + k - 1)))
        # S_k = Σ_{j<k} (σ_j + σ_{j+1})·h_j/2 written as two prefix sums of σ itself,
        # so that σ is never gathered into a derived array: the reverse pass then
        # only scatters into leaves (a chained gather-of-gather backward gave
        # nondeterministic gradients on Dr.Jit 1.5's LLVM backend, measured).
        right, left = sigma * (0.5 * h_next), sigma * (0.5 * h_prev)
        dr.eval(sigma, right, left)     # σ at the knots once, in one kernel (all three are read)
        self.S = (dr.block_prefix_sum(right, m)
                  + dr.block_prefix_sum(left, m, exclusive=False))
        self.sigma_far = dr.gather(Float, self.S, dr.arange(self.Index, self.n) * m + (m - 1))

    # -- opacity ------------------------------------------------------------
    def opacity(self):
        """y_f = 1 − exp(−Σ_f) per ray (size N)."""
        return one_minus_exp_neg(self.sigma_far)

    def transmittance(self):
        """1 − y_f = exp(−Σ_f) per ray (size N)."""
        return dr.exp(-self.sigma_far)

    def cumulative(self, t_query, ray):
        """Σ(t) at arbitrary positions (closed form); ``ray``: owner ray of each query."""
        Float, m = self.Float, self.m
        base = ray * m
        k = dr.binary_search(0, m - 2, lambda j: dr.gather(Float, self.t, base + j + 1) <= t_query)
        i = base + k
        t_k, h, a, b = self._segment(i)
        s = dr.clip(t_query - t_k, 0, h)
        slope = dr.select(h > 0, (b - a) / dr.fmax(h, 1e-30), 0)
        return dr.gather(Float, self.S, i) + s * (a + 0.5 * slope * s)

    def _segment(self, i):
        """Start, width and end densities of segment i (flat knot index, i+1 in the same ray)."""
        Float = self.Float
        t_k = dr.gather(Float, self.t, i)
        h = dr.gather(Float, self.t, i + 1) - t_k
        return t_k, h, dr.gather(Float, self.sigma, i), dr.gather(Float, self.sigma, i + 1)

    # -- inverse ------------------------------------------------------------
    def invert(self, target, ray, fallback_frac=None):
        """Positions t with Σ(t) = ``target`` (Σ*, one per sample); ``ray``: owner of each sample.

        Differentiable in the knot values and in ``target`` (closed-form root,
        segment index detached). Rays with Σ_f < ``SIGMA_EMPTY`` have no
        sampling distribution: they get t = t_n + ``fallback_frac``·L (no
        gradient), which only ever meets a zero weight y_f.
        """
        Float, m = self.Float, self.m
        base = ray * m
        S = self.S
        k = dr.binary_search(0, m - 2, lambda j: dr.gather(Float, S, base + j + 1) <= target)
        i = base + k
        t_k, h, a, b = self._segment(i)
        r = dr.fmax(target - dr.gather(Float, S, i), 0)
        slope = dr.select(h > 0, (b - a) / dr.fmax(h, 1e-30), 0)
        # Root of (slope/2)·s² + a·s − r = 0 without cancellation
        disc = dr.fmax(a * a + 2 * slope * r, 1e-30)
        s = 2 * r / dr.fmax(a + dr.sqrt(disc), 1e-30)
        t = t_k + dr.clip(s, 0, h)
        sigma_far = dr.gather(Float, self.sigma_far, ray)
        if fallback_frac is not None:
            t_n = dr.gather(Float, self.t, base)
            t_f = dr.gather(Float, self.t, base + (m - 1))
            uniform = dr.detach(t_n + fallback_frac * (t_f - t_n))
            t = dr.select(sigma_far > SIGMA_EMPTY, t, uniform)
        return t

    def sample(self, v, samples: int):
        """Positions F⁻¹(y_f·v) for uniforms ``v`` (size N·samples, block per ray).

        With stratified ``v`` (v_i ∈ [i/m', (i+1)/m')) the positions are sorted
        inside each ray's block (F⁻¹ is monotone).
        """
        ray, _ = block_index(self.Index, self.n, samples)
        sigma_far = dr.gather(self.Float, self.sigma_far, ray)
        return self.invert(target_sigma(v, sigma_far), ray, fallback_frac=v), ray


def stratified_uniforms(u, samples: int, stratified: bool = True):
    """v_i = (i + u_i)/m' (Eq. 8) or plain u_i (Eq. 7), flat blocks of ``samples``."""
    if not stratified:
        return u
    Index = dr.uint32_array_t(type(u))
    _, i = block_index(Index, dr.width(u) // samples, samples)
    return (type(u)(i) + u) * (1.0 / samples)
