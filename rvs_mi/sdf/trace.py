"""Capped sphere tracing that records its points and their u-derivatives; the hit's root
refinement; shadow rays.

Fixed step count, t_{i+1} = clamp(t_i + f(x_i), t0, t1): every t_i is a
continuous function of the pixel position u away from silhouettes, which is
what makes the quadrature warp (Eq. 13) continuous. Points pile up at the hit
point or at t1, where their trapezoid weights vanish; a lane whose (t, ∂_a t)
stop changing exactly leaves the loop, since its remaining points would all
repeat the last one.

Alongside t_i we propagate ∂t_i/∂u_a exactly (a forward-mode derivative by
hand): ∂t_{i+1} = ∂t_i + ∇f(x_i)·∂x_i, with ∂x_i = ∂o + ∂t_i d + t_i ∂d
(``RayBundle.step``).

Hits. The tracer marches on f + τ, not on f, with τ = ``hit_epsilon`` · R
(R: the SDF's extent radius, ``source.extent_radius()``). A ray hits where
one of its points has f + τ < τ, i.e. f < 0, before the segment's end: it
has met the surface f = 0. A ray that passes within τ of the surface
without meeting it keeps f + τ > τ and is a miss, so the rendered
silhouette is the zero level set's, wherever ``max_steps`` bring the
grazing rays that meet the surface below f + τ = τ. (Marching on f with
|f| < τ as the hit test renders the level set f = τ instead, a sphere of
radius r + ~τ.) Near the silhouette, grazing rays creep towards their
tangent point in steps of ~τ and pass it within ``max_steps``, so the
warp's weights, which peak where the traced f + τ and ∇f·d are small, sit
at the tangent point of the silhouette the image has; rays tracing f
itself creep in ever smaller steps and stop short of it.

The point of smallest f + τ lies inside the surface (up to 2τ deep where
the trace converged); ``refine`` moves it onto the root of f where the ray
enters, with the quadratic model of f
along the ray at the point t,

    f(t + s) ≈ f + (∇f·d) s + ½ (dᵀ H d) s²                  (R1)

taking s to the model's root nearest to 0 (inside, f < 0: the root behind
the point), or to its vertex where it has no real root. The shading point
is then on the zero level set to ROOT_REL · R (plus float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from .bundle import Struct
from .sources import matvec
from .warp import point_S

REFINE_STEPS = 4     # steps of (R1) after the sphere trace
ROOT_REL = 1e-5      # a hit's refined point x has |f| < ROOT_REL · R + ROOT_ULP · |x|
ROOT_ULP = 2.0 ** -20    # (float32 rounding of f at x)
REFINE_REACH = 0.1   # one (R1) step moves at most REFINE_REACH · R along the ray
SHADOW_EPS = 1e-3    # a shadow ray is blocked where it comes within SHADOW_EPS · R


class TracePoints(Struct):
    """Tracer points x_i: t_i, ∂_a t_i, S(x_i) = |f| + λ_d |∇f·d| + ε (Eq. 11) and f(x_i) (the
    warp's free-space fade uses min_i f); n per lane, lane-major (lane·n + i)."""
    DRJIT_STRUCT = {"t": mi.Float, "dt": mi.Vector2f, "S": mi.Float, "f": mi.Float}


@dataclass
class Trace:
    n: int                # points per ray
    t_last: object        # the hit point (refined onto f = 0), else the point of smallest f
    f_last: object        # f there
    hit: object           # Bool: a point inside the surface (f < 0) before t1
    points: TracePoints | None = None   # all n points of every lane, if recorded

    def point(self, i) -> TracePoints:
        """Point i (int or UInt32 per lane) of every lane."""
        lane = dr.arange(mi.UInt32, dr.width(self.t_last))
        return dr.gather(TracePoints, self.points, lane * self.n + i)


def offset(source, opts):
    """τ = hit_epsilon · R, the offset of the traced function f + τ (a Dr.Jit Float)."""
    return opts.hit_epsilon * source.extent_radius()


def inside(ray, t_min, f_min, tau):
    """A point of the trace has traced value f + τ below τ (f < 0) before the segment's end."""
    return (f_min < tau) & (t_min < ray.t1 - tau) & (ray.t1 > ray.t0)


def finish(source, ray, t_min, f_min, points, opts, tau) -> Trace:
    """The Trace from the point of smallest traced value (t_min, f_min = f + τ): a hit where
    that point is inside, refined onto the root of f where the ray enters (``refine``)."""
    with dr.suspend_grad():
        R = source.extent_radius()
        hit = inside(ray, t_min, f_min, tau)
        t_root, f_root = refine(source, ray, t_min, REFINE_REACH * R, hit)
        tol = ROOT_REL * R + ROOT_ULP * dr.norm(ray.o + t_root * ray.d)
        on = hit & (dr.abs(f_root) < tol)
        return Trace(opts.max_steps, dr.select(on, t_root, t_min),
                     dr.select(on, f_root, f_min - tau), hit, points)


@dr.syntax
def refine(source, ray, t, reach, active):
    """(t, f) after REFINE_STEPS steps of (R1) from t, each at most ``reach`` long and kept
    in [t0, t1]; lanes not ``active`` keep t."""
    i = mi.UInt32(0)
    while dr.hint(i < REFINE_STEPS, label="sdf_hit_refine"):
        f, g, H = source.eval(ray.o + t * ray.d, 2)
        a = 0.5 * dr.dot(ray.d, matvec(H, ray.d))
        b = dr.dot(g, ray.d)
        s = _model_step(a, b, f)
        t = dr.select(active, dr.clip(t + dr.clip(s, -reach, reach), ray.t0, ray.t1), t)
        i += 1
    return t, source.eval(ray.o + t * ray.d, 1)[0]


def _model_step(a, b, c):
    """Step s of (R1) with f ≈ c + b s + a s²: the real root nearest to 0 (numerically stable
    form; inside, c < 0, the root behind where there is one), or the vertex −b/(2a) where
    there is none; 0 where neither exists."""
    disc = b * b - 4.0 * a * c
    q = -0.5 * (b + dr.copysign(dr.safe_sqrt(disc), b))
    r1 = dr.select(q != 0, c / q, dr.inf)
    r2 = dr.select(a != 0, q / a, dr.inf)
    first = dr.abs(r1) <= dr.abs(r2)
    near, far = dr.select(first, r1, r2), dr.select(first, r2, r1)
    root = dr.select((c < 0) & (near > 0) & (far <= 0), far, near)
    vertex = dr.select(a != 0, -b / (2.0 * a), 0.0)
    s = dr.select(disc >= 0, root, vertex)
    return dr.select(dr.isfinite(s), s, 0.0)


def sphere_trace(source, ray, opts, record: bool = True) -> Trace:
    """Trace all lanes of ``ray`` (a ``RayBundle``) for ``opts.max_steps`` points (detached).

    ``record=False`` (primal renders) keeps no per-point buffers: only the
    last point is needed, and the buffers take 20 bytes per lane and step.
    """
    with dr.suspend_grad():
        ray = dr.detach(ray)
        n = opts.max_steps
        points = dr.zeros(TracePoints, dr.width(ray.t0) * n) if record else None
        tau = offset(source, opts)
        t_min, f_min = _march(source, ray, opts, points, tau)
        return finish(source, ray, t_min, f_min, points, opts, tau)


@dr.syntax
def _march(source, ray, opts, points, tau):
    """(t, f + τ) of the point of smallest f + τ among ``opts.max_steps`` points on f + τ; each
    point scattered into ``points`` (f: the traced f + τ)."""
    n, lambda_d, epsilon = opts.max_steps, opts.lambda_d, opts.epsilon
    slot = dr.arange(mi.UInt32, dr.width(ray.t0)) * n
    i = mi.UInt32(0)
    f_min = dr.full(mi.Float, dr.inf, dr.width(ray.t0))
    t_min = mi.Float(ray.t0)
    moving = dr.full(mi.Bool, True, dr.width(ray.t0))
    while dr.hint((i < n) & moving, label="sdf_sphere_trace", exclude=[points]):
        x, dx = ray.point(ray.t, ray.dt)
        f, g = source.eval(x, 1)
        f, g = dr.detach(f) + tau, dr.detach(g)
        if dr.hint(points is not None, mode="scalar"):
            S = point_S(f, g, ray.d, lambda_d, epsilon)
            dr.scatter(points, TracePoints(t=ray.t, dt=ray.dt, S=S, f=f), slot + i)
        smaller = f < f_min
        t_min, f_min = dr.select(smaller, ray.t, t_min), dr.select(smaller, f, f_min)
        following = ray.step(f, g, dx)
        if dr.hint(points is None, mode="scalar"):      # (a recording keeps all n points)
            moving = fixed_point_not_reached(ray, following)
        ray = following
        i += 1
    return t_min, f_min


def fixed_point_not_reached(ray, following):
    """Whether the step from ``ray``'s point to ``following`` moved t or ∂_a t. Where it did
    not, every later step repeats the point: the trace has converged (or ended at t1) and
    stops early, which changes none of its results."""
    return (following.t != ray.t) | (following.dt.x != ray.dt.x) | (following.dt.y != ray.dt.y)


def trace_visibility(source, o, d, tmax, opts):
    """Shadow-ray test against the SDF: True where the segment [0, tmax] is unoccluded
    (blocked where up to ``max_steps`` steps come within SHADOW_EPS · R of the surface)."""
    with dr.suspend_grad():
        o, d, tmax = dr.detach(o), dr.detach(d), dr.detach(tmax)
        zero = [mi.Vector3f(0.0), mi.Vector3f(0.0)]
        t0, t1, _, _, valid = source.interval(o, d, zero, zero)
        tau = SHADOW_EPS * source.extent_radius()
        return ~(_blocked(source, o, d, t0, dr.minimum(t1, tmax), opts.max_steps, tau) & valid)


@dr.syntax
def _blocked(source, o, d, t0, t1, n_steps, tau):
    """Whether up to ``n_steps`` steps of at least τ meet the surface in [t0, t1]."""
    i, t, blocked = mi.UInt32(0), mi.Float(t0), dr.zeros(mi.Bool, dr.width(t0))
    while dr.hint((i < n_steps) & (t < t1) & ~blocked, label="sdf_shadow_trace"):
        f = dr.detach(source.eval(o + t * d, 1)[0])
        blocked |= (f < tau) & (t < t1)
        t = t + dr.maximum(f, tau)
        i += 1
    return blocked
