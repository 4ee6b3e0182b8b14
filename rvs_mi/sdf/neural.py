"""A neural SDF source for ``sdf_reparam`` / ``sdf_naive``, and the eikonal loss.

The SDF is a small MLP on a positional encoding (IDR-style, Bangaru et al. 2022, Sec. 4),
written by hand with Dr.Jit arithmetic so that ∇f and the Hessian H come out
analytically (Dr.Jit AD is first-order only, and the warp needs H):

    q     = (x − c) / s                         (c, s: centre and radius of the bound)
    e(q)  = [q, sin(2^k q_i), cos(2^k q_i)]     k = 0 … octaves−1
    h_1   = σ(W_1 e + b_1),  h_l = σ(W_l h_{l−1} + b_l),   σ(z) = log(1 + e^{βz}) / β
    f(x)  = s · (w_o · h_L + b_o)

so ∇f = ∂N/∂q and H = (∂²N/∂q²) / s. Jacobians (3 per unit) and Hessians
(6 per unit) are pushed forward layer by layer:
J' = σ'(z) J_z, H' = σ''(z) J_z J_zᵀ + σ'(z) H_z, with σ' = sigmoid(βz),
σ'' = β σ'(1 − σ'). Every encoding channel depends on one coordinate, so the
first layer's J_z and H_z are sparse (H_z diagonal).

Geometric initialisation (Atzmon & Lipman 2020, SAL; as in IDR): hidden
weights N(0, 2/width), biases 0, the encoding's sin/cos columns 0, output
weights N(√π/√width, 10⁻⁴) and output bias −r/s, so f ≈ |x − c| − r at start;
then (small widths make that rough) the output layer is least-squares fitted
to |q| − r/s at 4096 seeded points of the unit ball.

All weights and biases are ONE flat differentiable ``mi.Float``, exposed by
``mi.traverse`` as ``<integrator id>.sdf.weights``. Attach from Python::

    scene = rvs_mi.scene.load_scene("scenes/sdf_sphere.xml")
    src = rvs_mi.sdf.neural.attach_neural_sdf(scene.integrator(), radius=0.5)
    params = mi.traverse(scene)          # params["integrator.sdf.weights"]

The sphere tracer covers the bounding sphere (c, s); the warp's free-space
fade (``warp.fade``) runs from f = FADE_INNER·b to b with b = ``fade``
(default 0.1·s). Keep the surface ≥ 1.1·b inside the bound.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from .sources import FADE_INNER, BOUND_MARGIN, sphere_interval

DEFAULTS = {"center": (0.0, 0.0, 0.0), "radius": 0.5, "bound_radius": 1.0, "hidden": 32,
            "layers": 2, "octaves": 4, "beta": 100.0, "seed": 0, "fade": None}

_HK = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))   # Hessian components kept


def _softplus(z, beta):
    """σ(z), σ'(z), σ''(z) of the β-softplus, overflow-free."""
    import drjit as dr
    e = dr.exp(-beta * dr.abs(z))
    sp = dr.maximum(z, 0.0) + dr.log(1.0 + e) / beta
    r = 1.0 / (1.0 + e)
    s1 = dr.select(z >= 0, r, e * r)                 # sigmoid(βz)
    s2 = beta * s1 * (1.0 - s1)
    return sp, s1, s2


class NeuralSDF:
    """MLP signed distance with analytic ∇f and Hessian (the ``AnalyticSDF`` interface)."""

    def __init__(self, center=DEFAULTS["center"], radius=DEFAULTS["radius"],
                 bound_radius=DEFAULTS["bound_radius"], hidden=DEFAULTS["hidden"],
                 layers=DEFAULTS["layers"], octaves=DEFAULTS["octaves"], beta=DEFAULTS["beta"],
                 seed=DEFAULTS["seed"], fade=DEFAULTS["fade"]):
        import drjit as dr
        import mitsuba as mi
        try:
            center = [float(v) for v in center]
        except TypeError:
            raise UserError("neural sdf: center must be 3 numbers")
        if len(center) != 3 or not all(math.isfinite(v) for v in center):
            raise UserError(f"neural sdf: center must be 3 finite numbers (got {center})")
        for name, v in (("radius", radius), ("bound_radius", bound_radius), ("beta", beta)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"neural sdf: {name} must be > 0 (got {v!r})")
        for name, v, lo in (("hidden", hidden, 1), ("layers", layers, 1), ("octaves", octaves, 0),
                            ("seed", seed, 0)):
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
                raise UserError(f"neural sdf: {name} must be an integer >= {lo} (got {v!r})")
        fade = 0.1 * float(bound_radius) if fade is None else fade
        if not (isinstance(fade, (int, float)) and fade > 0):
            raise UserError(f"neural sdf: fade must be > 0 (got {fade!r})")
        if radius + BOUND_MARGIN * fade >= bound_radius:
            raise UserError(f"neural sdf: bound_radius ({bound_radius}) must exceed radius + "
                            f"{BOUND_MARGIN}·fade ({radius + BOUND_MARGIN * fade:.4g})")
        self.center_list = center
        self.radius, self.bound, self.beta = float(radius), float(bound_radius), float(beta)
        self.hidden, self.layers, self.octaves = hidden, layers, octaves
        self.n_in = 3 + 6 * octaves
        self.fade = float(fade)
        # layer shapes (out, in) and offsets into the flat parameter vector
        shapes = [(hidden, self.n_in)] + [(hidden, hidden)] * (layers - 1) + [(1, hidden)]
        self.offsets, off = [], 0
        for n_out, n_in in shapes:
            self.offsets.append((off, off + n_out * n_in, n_out, n_in))   # W at off, b after
            off += n_out * n_in + n_out
        self.n_params = off
        self.weights = mi.Float(self._geometric_init(shapes, seed))
        self.center = dr.opaque(mi.Point3f, center)
        self.scale = dr.opaque(mi.Float, self.bound)

    # ------------------------------------------------------------------ set-up
    def _geometric_init(self, shapes, seed):
        rng = np.random.default_rng(seed)
        out = []
        for li, (n_out, n_in) in enumerate(shapes):
            if li == len(shapes) - 1:
                W = rng.normal(math.sqrt(math.pi) / math.sqrt(n_in), 1e-4, (n_out, n_in))
                b = np.full(n_out, -self.radius / self.bound)
            else:
                W = rng.normal(0.0, math.sqrt(2.0) / math.sqrt(n_out), (n_out, n_in))
                if li == 0:
                    W[:, 3:] = 0.0                     # encoding starts switched off
                b = np.zeros(n_out)
            out += [W, b]
        # Refinement: with a few dozen units the random SAL features approximate
        # |q| only roughly (≈ 0.1·s RMS at width 32), so the output layer (linear
        # in the features) is then least-squares fitted to |q| − r/s in the unit ball.
        q = rng.normal(size=(4096, 3))
        q *= (rng.random(4096) ** (1.0 / 3.0) / np.linalg.norm(q, axis=1))[:, None]
        h = q
        for li in range(len(shapes) - 1):
            W, b = out[2 * li], out[2 * li + 1]
            z = h @ W[:, :3].T + b if li == 0 else h @ W.T + b
            h = np.maximum(z, 0.0) + np.log1p(np.exp(-self.beta * np.abs(z))) / self.beta
        A = np.concatenate([h, np.ones((len(h), 1))], axis=1)
        target = np.linalg.norm(q, axis=1) - self.radius / self.bound
        sol = np.linalg.solve(A.T @ A + 1e-6 * np.eye(A.shape[1]), A.T @ target)
        out[-2] = sol[None, :-1]
        out[-1] = sol[-1:]
        return np.concatenate([a.ravel() for a in out]).astype(np.float32)

    def traverse(self, cb):
        import mitsuba as mi
        cb.put("sdf.weights", self.weights, mi.ParamFlags.Differentiable)

    def parameters_changed(self):
        import drjit as dr
        n = dr.width(self.weights)
        if n != self.n_params:
            raise UserError(f"sdf.weights must have {self.n_params} entries (got {n})")

    def evaluator(self):
        """The source itself (its evaluations need no shared precomputation)."""
        return self

    # ------------------------------------------------------------------ bounds
    def extent_radius(self):
        import drjit as dr
        import mitsuba as mi
        return dr.opaque(mi.Float, self.bound - BOUND_MARGIN * self.fade)

    def fade_range(self):
        import drjit as dr
        import mitsuba as mi
        return dr.opaque(mi.Float, FADE_INNER * self.fade), dr.opaque(mi.Float, self.fade)

    def bound_radius(self):
        return self.scale

    def interval(self, o, d, do, dd):
        return sphere_interval(self.center, self.scale, o, d, do, dd)

    # ------------------------------------------------------------------ evaluation
    def _w(self, i):
        # A full-width index (not a scalar one): the reverse-mode derivative of the
        # gather is then a fused scatter-add, not one horizontal reduction per weight.
        import drjit as dr
        import mitsuba as mi
        return dr.gather(mi.Float, self.weights, self._idx + i)

    def eval(self, x, order=1):
        """(f, ∇f) or, for order 2, (f, ∇f, H) at world points x; differentiable in the weights."""
        import drjit as dr
        import mitsuba as mi
        q = (x - self.center) / self.scale
        self._idx = dr.zeros(mi.UInt32, dr.width(q))
        qc = [q.x, q.y, q.z]
        # encoding channels: value, the coordinate they depend on, d/dq, d²/dq²
        enc = [(qc[i], i, 1.0, 0.0) for i in range(3)]
        for k in range(self.octaves):
            w = float(2 ** k)
            for i in range(3):
                s, c = dr.sincos(w * qc[i])
                enc.append((s, i, w * c, -w * w * s))
                enc.append((c, i, -w * s, -w * w * c))
        # first layer (sparse derivatives)
        off_w, off_b, n_out, n_in = self.offsets[0]
        h, J, Hs = [], [], []
        for j in range(n_out):
            z = self._w(off_b + j)
            jz = [0.0, 0.0, 0.0]
            hz = [0.0, 0.0, 0.0]
            for k, (v, i, dv, ddv) in enumerate(enc):
                wjk = self._w(off_w + j * n_in + k)
                z = z + wjk * v
                if order >= 1:
                    jz[i] = jz[i] + wjk * dv
                if order >= 2 and k >= 3:
                    hz[i] = hz[i] + wjk * ddv
            h_j, J_j, H_j = self._activate(z, jz, hz + [0.0, 0.0, 0.0], order)
            h.append(h_j), J.append(J_j), Hs.append(H_j)
        for li in range(1, len(self.offsets)):
            off_w, off_b, n_out, n_in = self.offsets[li]
            last = li == len(self.offsets) - 1
            nh, nJ, nH = [], [], []
            for j in range(n_out):
                z = self._w(off_b + j)
                jz = [0.0] * 3
                hz = [0.0] * 6
                for k in range(n_in):
                    wjk = self._w(off_w + j * n_in + k)
                    z = z + wjk * h[k]
                    if order >= 1:
                        jz = [jz[a] + wjk * J[k][a] for a in range(3)]
                    if order >= 2:
                        hz = [hz[a] + wjk * Hs[k][a] for a in range(6)]
                if last:
                    nh.append(z), nJ.append(jz), nH.append(hz)
                else:
                    h_j, J_j, H_j = self._activate(z, jz, hz, order)
                    nh.append(h_j), nJ.append(J_j), nH.append(H_j)
            h, J, Hs = nh, nJ, nH
        f = h[0] * self.scale
        g = mi.Vector3f(J[0][0], J[0][1], J[0][2])
        if order < 2:
            return f, g
        hq = {key: Hs[0][m] / self.scale for m, key in enumerate(_HK)}

        def e(a, b):
            return hq[(min(a, b), max(a, b))]
        H = mi.Matrix3f(e(0, 0), e(0, 1), e(0, 2), e(1, 0), e(1, 1), e(1, 2),
                        e(2, 0), e(2, 1), e(2, 2))
        return f, g, H

    def _activate(self, z, jz, hz, order):
        sp, s1, s2 = _softplus(z, self.beta)
        J = [s1 * jz[a] for a in range(3)] if order >= 1 else None
        H = None
        if order >= 2:
            H = [s2 * jz[a] * jz[b] + s1 * hz[m] for m, (a, b) in enumerate(_HK)]
        return sp, J, H


# --------------------------------------------------------------------------- API
def attach_neural_sdf(integrator, **options) -> NeuralSDF:
    """Replace ``integrator.source`` (an ``sdf_reparam``/``sdf_naive``) with a NeuralSDF.

    Options: ``center`` (3 floats), ``radius`` (initial sphere), ``bound_radius``
    (traced bounding sphere), ``hidden``, ``layers``, ``octaves``, ``beta``,
    ``seed``, ``fade``. Call ``mi.traverse(scene)`` afterwards.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"neural sdf: unknown option(s) {', '.join(unknown)}; "
                        f"expected {', '.join(DEFAULTS)}")
    if integrator is None or not hasattr(integrator, "source"):
        raise UserError("attach_neural_sdf needs an sdf_reparam / sdf_naive integrator")
    src = NeuralSDF(**options)
    integrator.source = src
    return src


def sample_ball(n: int, seed: int, center, radius):
    """n uniform points in the ball (center, radius) (numpy, seeded) as a Point3f."""
    import mitsuba as mi
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = radius * rng.random(n) ** (1.0 / 3.0)
    p = np.asarray(center, dtype=np.float64) + v * r[:, None]
    return mi.Point3f(*[p[:, k].astype(np.float32) for k in range(3)])


def eikonal_loss(source: NeuralSDF, n: int = 1024, seed: int = 0):
    """mean (|∇f| − 1)² at n uniform points of the bounding sphere (IDR's eikonal term).

    Differentiable w.r.t. ``source.weights``; returns a width-1 ``mi.Float``.
    """
    if not isinstance(n, int) or n < 1:
        raise UserError(f"eikonal_loss: n must be a positive integer (got {n!r})")
    return eikonal_at(source, sample_ball(n, seed, source.center_list, source.bound))


def eikonal_at(source: NeuralSDF, x):
    """mean (|∇f(x)| − 1)² over the points ``x`` (Point3f); a width-1 ``mi.Float``."""
    import drjit as dr
    _, g = source.eval(x, 1)
    return dr.mean(dr.square(dr.norm(g) - 1.0))
