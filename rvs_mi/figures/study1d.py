"""Single-ray estimator study (Morozov et al. 2024, Sec. 5.1, Fig. 2) on the same spline code as the plugins.

One ray, t ∈ [0, 1], density tabulated on 256 evenly spaced knots t_k = k/255 as
σ_k = softplus(64·s_k) with s = −1 everywhere (σ ≈ 1.6e-28) except raised
plateaus (knot index ranges, end exclusive):

* ``foggy``:          s[32:234]  = 0.1   (σ ≈ 6.4 over most of the ray, Σ_f ≈ 5.07)
* ``glass_and_wall``: s[38:40] = s[44:46] = 0.2 (σ ≈ 12.8: two thin, nearly
                      transparent layers, Σ ≈ 0.10 each), s[192:196] = 4 (σ = 256:
                      an opaque layer near t ≈ 0.75, Σ ≈ 4.0)
* ``wall``:           s[128:132] = 4     (one opaque layer mid-ray, Σ ≈ 4.0)

σ̂ is the piecewise-linear spline through the knots (:class:`rvs_mi.volume.spline.Spline`,
the integrators' spline), F(t) = 1 − exp(−∫₀ᵗ σ̂). Radiance (scalar, smooth, fixed):

    c(t) = 0.5 + 0.25·sin(2π·1.3·t + 0.4) + 0.15·cos(2π·3.1·t + 1.1) + 0.1·sin(2π·5.7·t + 2.3)

Target: C = ∫₀¹ c(t) dF(t) (no background). The exact value is a dense quadrature of
the same spline: 65536 intervals, exact F increments of the spline, c at the interval
midpoints (float64 sum; changing 65536 → 262144 moves C by < 1e-8).

Estimators with m samples, R independent runs each, all four drawing the same
uniforms u_i for a given (seed, m) (common random numbers):

* ``uniform``            Ĉ = (1/m)·Σ c(t_i)·p(t_i),        t_i = u_i ~ U[0, 1]
* ``stratified_uniform`` Ĉ = Σ (1/m)·c(τ_i)·p(τ_i),        τ_i = (i + u_i)/m          (Eq. 13)
* ``rvs``                Ĉ = y_f·(1/m)·Σ c(F⁻¹(y_f·u_i))                                (Eq. 7)
* ``stratified_rvs``     the same with v_i = (i + u_i)/m instead of u_i                (Eq. 8)

with p(t) = dF/dt = σ̂(t)·exp(−Σ(t)), the density of the spline model. (The paper
prints the strata of Eq. 8 as [(i−1)/(m+1), i/(m+1)], which would not cover [0, 1]
and bias the estimate; we use [i/m, (i+1)/m), as the plugins do.)
The RVS estimators go through ``stratified_uniforms``, ``Spline.sample`` and
``rvs_colour``, exactly the calls of the ``rvs`` integrator.
"""
from __future__ import annotations

import math

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from ..volume.estimators import rvs_colour
from ..volume.spline import Spline, block_index, knot_positions, stratified_uniforms
from ..workarounds import no_expand_scatter

KNOTS = 256
FIELDS = ("foggy", "glass_and_wall", "wall")
ESTIMATORS = ("uniform", "stratified_uniform", "rvs", "stratified_rvs")
#: knot index ranges (end exclusive) and plateau values of s; s = −1 elsewhere
PLATEAUS = {
    "foggy": [(32, 234, 0.1)],
    "glass_and_wall": [(38, 40, 0.2), (44, 46, 0.2), (192, 196, 4.0)],
    "wall": [(128, 132, 4.0)],
}
RADIANCE_TEXT = ("c(t) = 0.5 + 0.25 sin(2 pi 1.3 t + 0.4) + 0.15 cos(2 pi 3.1 t + 1.1) "
                 "+ 0.1 sin(2 pi 5.7 t + 2.3)")
EXACT_INTERVALS = 65536


def field_text(name: str) -> str:
    parts = ", ".join(f"s[{a}:{b}] = {v:g}" for a, b, v in PLATEAUS[name])
    return f"sigma_k = softplus(64 s_k) at t_k = k/255 (k = 0..255), s = -1 except {parts}"


def field_logits(name: str) -> np.ndarray:
    """The plateau function s of a field (256 knots)."""
    if name not in PLATEAUS:
        raise UserError(f"unknown field {name!r}; use one of: " + ", ".join(FIELDS))
    s = np.full(KNOTS, -1.0)
    for a, b, v in PLATEAUS[name]:
        s[a:b] = v
    return s


def softplus_np(x):
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softplus(x):
    """softplus on Dr.Jit arrays, smooth everywhere (the max/abs form has a zero AD derivative at 0)."""
    return dr.select(x > 30, x, dr.log(1 + dr.exp(dr.fmin(x, 30))))


def field_sigma(name: str) -> np.ndarray:
    """σ at the 256 knots (float32, as the Dr.Jit spline stores it)."""
    return softplus_np(64.0 * field_logits(name)).astype(np.float32)


def radiance(t):
    """c(t) on Dr.Jit or NumPy arrays."""
    sin, cos = (dr.sin, dr.cos) if dr.is_array_v(t) else (np.sin, np.cos)
    tau = 2 * math.pi
    return (0.5 + 0.25 * sin(tau * 1.3 * t + 0.4) + 0.15 * cos(tau * 3.1 * t + 1.1)
            + 0.1 * sin(tau * 5.7 * t + 2.3))


def ray_spline(sigma, copies: int):
    """The 256-knot spline of one ray on [0, 1], replicated ``copies`` times (flat, one per run).

    ``sigma``: σ at the knots (NumPy or a Dr.Jit ``Float``, possibly attached for AD).
    """
    Float = mi.Float
    t = knot_positions(dr.zeros(Float, copies), dr.ones(Float, copies), KNOTS)
    if not dr.is_array_v(sigma):
        sigma = Float(np.asarray(sigma, dtype=np.float32))
    if dr.width(sigma) != KNOTS:
        raise ValueError(f"expected {KNOTS} knot values, got {dr.width(sigma)}")
    if copies > 1:
        sigma = dr.gather(Float, sigma, dr.arange(mi.UInt32, copies * KNOTS) % KNOTS)
    return Spline(t, sigma, KNOTS)


def exact_colour(sigma, dense: int = EXACT_INTERVALS, c=radiance) -> float:
    """C = ∫ c dF on the spline by ``dense``-interval quadrature (exact F increments, c at midpoints)."""
    spline = ray_spline(dr.detach(sigma) if dr.is_array_v(sigma) else sigma, 1)
    edges = dr.linspace(mi.Float, 0.0, 1.0, dense + 1)
    cum = np.array(spline.cumulative(edges, dr.zeros(mi.UInt32, dense + 1)), dtype=np.float64)
    F = -np.expm1(-cum)
    e = np.linspace(0.0, 1.0, dense + 1)
    mids = 0.5 * (e[1:] + e[:-1])
    return float(np.sum(np.diff(F) * np.asarray(c(mids), dtype=np.float64)))


def uniforms(count: int, seed: int, stream: int):
    """``count`` uniforms from PCG32 (one stream per lane); seed/stream are opaque so that
    kernels are compiled once and reused for every seed."""
    state = (int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xBF58476D1CE4E5B9) % 2 ** 64
    rng = mi.PCG32(size=count, initstate=dr.opaque(mi.UInt64, state))
    return rng.next_float32()


def spline_density(spline, t, owner):
    """σ̂(t) of the spline at positions t (``owner``: ray of each position)."""
    Float = spline.Float
    base = owner * spline.m
    k = dr.binary_search(0, spline.m - 2, lambda j: dr.gather(Float, spline.t, base + j + 1) <= t)
    # (Spline has no public σ̂(t); its segment accessor is the integrators' own.)
    t_k, h, a, b = spline._segment(base + k)
    w = dr.clip((t - t_k) / dr.fmax(h, 1e-30), 0, 1)
    return dr.fma(b - a, w, a)


def estimate(spline, estimator: str, m: int, runs: int, seed: int, c=radiance):
    """``runs`` independent estimates Ĉ with ``m`` samples each (a Dr.Jit ``Float`` of size ``runs``).

    ``spline`` holds ``runs`` copies of the ray (see :func:`ray_spline`).
    """
    if estimator not in ESTIMATORS:
        raise UserError(f"unknown estimator {estimator!r}; use one of: " + ", ".join(ESTIMATORS))
    if m < 1:
        raise UserError(f"the number of samples must be >= 1 (got {m})")
    u = uniforms(runs * m, seed, m)
    v = stratified_uniforms(u, m, stratified=estimator.startswith("stratified"))
    if estimator.endswith("uniform"):
        # Ĉ = (1/m)·Σ c(t_i)·p(t_i) on the ray of length 1 (Eq. 13 when stratified)
        owner, _ = block_index(mi.UInt32, runs, m)
        pdf = spline_density(spline, v, owner) * dr.exp(-spline.cumulative(v, owner))
        return dr.block_sum(c(v) * pdf, m) * (1.0 / m)
    # Ĉ = y_f·(1/m)·Σ c(F⁻¹(y_f·v_i))  (Eq. 7 / Eq. 8), the rvs integrator's calls
    t, _ = spline.sample(v, m)
    return rvs_colour(spline.opacity(), [c(t)], m)[0]


def sample_counts(max_samples: int) -> list[int]:
    """1, 2, 4, … up to ``max_samples``."""
    out, m = [], 1
    while m <= max_samples:
        out.append(m)
        m *= 2
    return out


def run_study(runs: int = 256, max_samples: int = 256, seed: int = 0, fields=FIELDS,
              estimators=ESTIMATORS, progress=None):
    """Rows {field, estimator, m, mean, std, bias, exact} for every combination.

    ``std`` is the sample standard deviation of the R = ``runs`` estimates (ddof 1).
    """
    if runs < 2:
        raise UserError(f"runs must be >= 2 to measure a standard deviation (got {runs})")
    if max_samples < 1:
        raise UserError(f"max samples must be >= 1 (got {max_samples})")
    rows = []
    for field in fields:
        sigma = field_sigma(field)
        exact = exact_colour(sigma)
        spline = ray_spline(sigma, runs)
        for estimator in estimators:
            for m in sample_counts(max_samples):
                est = np.array(estimate(spline, estimator, m, runs, seed), dtype=np.float64)
                rows.append({"field": field, "estimator": estimator, "m": m, "mean": float(est.mean()),
                             "std": float(est.std(ddof=1)), "bias": float(est.mean() - exact),
                             "exact": exact})
                if progress:
                    progress()
    return rows


def lookup(rows, field, estimator, m, key="std"):
    for r in rows:
        if r["field"] == field and r["estimator"] == estimator and r["m"] == m:
            return r[key]
    raise KeyError((field, estimator, m))


def matching_table(rows, baseline_m: int = 128) -> dict:
    """Per field: the stratified-uniform std at ``baseline_m`` and, per estimator, the smallest
    m whose std is at or below it (None if no m reaches it)."""
    table = {}
    for field in [f for f in FIELDS if any(r["field"] == f for r in rows)]:
        base = [r["std"] for r in rows if r["field"] == field and r["estimator"] == "stratified_uniform"
                and r["m"] == baseline_m]
        if not base:
            continue
        table[field] = {"baseline_std": base[0]}
        for estimator in ESTIMATORS:
            ms = sorted((r["m"], r["std"]) for r in rows if r["field"] == field and r["estimator"] == estimator)
            hit = [m for m, s in ms if s <= base[0]]
            table[field][estimator] = hit[0] if hit else None
    return table


def describe() -> dict:
    """The study's definitions as data (written next to the results)."""
    return {
        "ray": "t in [0, 1], 256 knots t_k = k/255, piecewise-linear spline of sigma, "
               "F(t) = 1 - exp(-int_0^t sigma), C = int_0^1 c(t) dF(t), no background",
        "fields": {f: {"definition": field_text(f), "plateaus": PLATEAUS[f],
                       "sigma_far": float(np.sum(0.5 * (field_sigma(f)[1:] + field_sigma(f)[:-1])) / (KNOTS - 1))}
                   for f in FIELDS},
        "radiance": RADIANCE_TEXT,
        "exact": f"dense quadrature of the same spline, {EXACT_INTERVALS} intervals, exact F increments, "
                 "c at interval midpoints",
        "estimators": {
            "uniform": "(1/m) sum c(t_i) p(t_i), t_i ~ U[0,1]",
            "stratified_uniform": "sum (1/m) c(tau_i) p(tau_i), tau_i ~ U[i/m, (i+1)/m]  (Eq. 13)",
            "rvs": "y_f (1/m) sum c(F^-1(y_f u_i)), u_i ~ U[0,1]  (Eq. 7)",
            "stratified_rvs": "y_f (1/m) sum c(F^-1(y_f v_i)), v_i ~ U[i/m, (i+1)/m]  (Eq. 8)",
        },
        "random_numbers": "PCG32, the same uniforms for all four estimators at a given (seed, m)",
    }


# -- toy optimization -------------------------------------------------------------------------

def toy_radiances():
    """Radiance along four rays that cross the same 1-D density from different directions
    (view-dependent radiance, one function of t per ray)."""
    return [radiance,
            lambda t: 0.2 + 0.8 * t,
            lambda t: 1.0 - 0.9 * t * t,
            lambda t: 0.5 + 0.4 * (radiance(2.0 * t) - 0.5)]


TOY_RADIANCE_TEXT = [RADIANCE_TEXT, "c(t) = 0.2 + 0.8 t", "c(t) = 1 - 0.9 t^2",
                     "c(t) = 0.5 + 0.4 (c_0(2t) - 0.5), c_0 the study's radiance"]


def toy_optimization(steps: int = 300, lr: float = 0.05, samples: int = 8, runs: int = 16,
                     target_field: str = "glass_and_wall", seed: int = 0, eval_every: int = 10,
                     progress=None):
    """Fit a 256-knot density σ = softplus(64·s) (s learned, starting from s = 0, σ ≈ 0.69)
    so that the expected colours of the four rays of :func:`toy_radiances` match those of
    ``target_field``. Each step draws ``runs`` stratified-RVS estimates (Eq. 8) per ray with
    ``samples`` samples, loss = mean over rays and runs of (Ĉ − C_target)², one Adam step
    (learning rate ``lr`` decaying exponentially to lr/10 at the last step).

    Returns a dict: ``losses`` (stochastic loss per step), ``exact_steps`` / ``exact_losses``
    (loss of the exact colours, dense quadrature, every ``eval_every`` steps and at the end),
    ``exact_loss_start``, ``exact_loss_end``, ``sigma`` (learned σ at the knots), ``targets``.
    """

    if steps < 1 or samples < 1 or runs < 1:
        raise UserError("toy optimization: steps, samples and runs must be >= 1")
    cs = toy_radiances()
    targets = [exact_colour(field_sigma(target_field), c=c) for c in cs]
    opt = mi.ad.Adam(lr=lr)
    opt["s"] = mi.Float(np.zeros(KNOTS, np.float32))

    def exact_loss(s):
        sig = field_sigma_from(s)
        return float(np.mean([(exact_colour(sig, dense=8192, c=c) - tc) ** 2 for c, tc in zip(cs, targets)]))

    def field_sigma_from(s):
        return softplus_np(64.0 * np.array(s, dtype=np.float64)).astype(np.float32)

    losses, exact_steps, exact_losses = [], [0], [exact_loss(opt["s"])]
    for step in range(steps):
        spline = ray_spline(softplus(64.0 * opt["s"]), runs)
        loss = 0
        for j, (c, tc) in enumerate(zip(cs, targets)):
            est = estimate(spline, "stratified_rvs", samples, runs, seed * 1_000_003 + step * len(cs) + j, c=c)
            loss = loss + dr.mean(dr.square(est - dr.opaque(mi.Float, tc)))
        loss = loss / len(cs)
        with no_expand_scatter():          # deterministic reverse pass (see rvs_mi.workarounds)
            dr.backward(loss)
        opt.set_learning_rate(lr * 0.1 ** (step / steps))   # decays 10x over the run
        opt.step()
        losses.append(float(loss[0]))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            exact_steps.append(step + 1)
            exact_losses.append(exact_loss(opt["s"]))
        if progress:
            progress()
    return {"losses": losses, "exact_steps": exact_steps, "exact_losses": exact_losses,
            "exact_loss_start": exact_losses[0], "exact_loss_end": exact_losses[-1],
            "sigma": field_sigma_from(opt["s"]), "targets": targets, "target_field": target_field,
            "samples": samples, "runs": runs, "lr": lr, "steps": steps}
