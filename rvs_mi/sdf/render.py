"""Image formation for the SDF integrators (box pixel filter, Eq. 4 + pixel-edge flux).

Per pixel U (box filter) and sample u ∈ U, the reparameterized estimator
(Eq. 4) contributes L(T(u)) · |det ∂u T|, where T(u) = u + V has value u and
θ-derivative V, and |det| has value 1 and θ-derivative div V. Since the
pixel's own edges do not move with the warp, ∂θ I_p also contains the flux
−∮_∂U L V·n ds: each sample also draws one point s uniformly on
each of the pixel's 4 edges (unit length) at a shared offset and adds
−Σ_e L(s_e) V(s_e)·n_e, a term whose value is 0. In primal mode only the interior samples are traced.

Works per pixel, so any pixel subset could be rendered the same way provided
the u coordinates are the real sensor's (see ``Projection``).
"""
from __future__ import annotations

import math

from .camera import Projection
from .trace import sphere_trace, trace_visibility
from .warp import compute_warp, traced_warp

# World-space |f| below which the sphere tracer reports a hit.
HIT_EPS = 1e-3
# |∇f·d| floor in the implicit hit derivative ∂t = −∂θf/(∇f·d): near-grazing hits
# (|cos| < 0.05, a sliver next to silhouettes) otherwise give heavy-tailed
# shading derivatives (∝ 1/|∇f·d|) that dominate the variance of the gradient.
GRAZING = 0.05
SHADOW_OFFSET = 5 * HIT_EPS   # > HIT_EPS + the hit residual (≤ HIT_EPS)


def _pixel_samples(sampler, W, H, spp, pixels=None):
    """Output slot, pixel position base, interior position u, light sample per sample.

    Without ``pixels`` the slots are the film's pixels (row-major); with a
    ``mi.UInt32`` array of pixel indices, slot j holds pixel ``pixels[j]``.
    """
    import drjit as dr
    import mitsuba as mi
    n = (W * H if pixels is None else dr.width(pixels)) * spp
    idx = dr.arange(mi.UInt32, n)
    pix = idx // spp
    film_pix = pix if pixels is None else dr.gather(mi.UInt32, pixels, pix)
    px, py = film_pix % W, film_pix // W
    base = mi.Vector2f(mi.Float(px), mi.Float(py))
    u = base + sampler.next_2d()
    ls = sampler.next_2d()
    return pix, base, u, ls


def _edge_points(base, s, e):
    """Point at parameter s on edge e of the pixel at ``base`` and the outward normal.

    Edges: 1 top (y = py), 2 bottom (y = py + 1), 3 left (x = px), 4 right (x = px + 1).
    """
    import drjit as dr
    import mitsuba as mi
    horiz = e <= 2
    ue = mi.Vector2f(dr.select(horiz, base.x + s, base.x + mi.Float(e == 4)),
                     dr.select(horiz, base.y + mi.Float(e == 2), base.y + s))
    ne = mi.Vector2f(dr.select(e == 3, -1.0, dr.select(e == 4, 1.0, 0.0)),
                     dr.select(e == 1, -1.0, dr.select(e == 2, 1.0, 0.0)))
    return ue, ne


def _gather2(v, j):
    import drjit as dr
    import mitsuba as mi
    return mi.Vector2f(dr.gather(mi.Float, v.x, j), dr.gather(mi.Float, v.y, j))


def render_sdf(integ, scene, sensor, seed, spp, primal: bool, pixels=None):
    """The image (TensorXf H×W×C) with the AD graph of the warped estimator.

    With ``pixels`` (``mi.UInt32`` film pixel indices, row-major) only those
    pixels are rendered, with the same estimator (interior samples and the
    flux through the pixel's own edges), as an (N, C) tensor.
    """
    import drjit as dr
    import mitsuba as mi
    if isinstance(sensor, int):
        sensor = scene.sensors()[sensor]
    proj = Projection.from_sensor(sensor)
    film = sensor.film()
    W, H = (int(v) for v in film.crop_size())
    if pixels is None:
        sampler, spp = integ.prepare(sensor, seed, spp, [])
    else:
        spp = spp or sensor.sampler().sample_count()
        sampler = sensor.sampler().fork()
        sampler.set_sample_count(spp)
        sampler.set_samples_per_wavefront(spp)
        sampler.seed(seed, dr.width(pixels) * spp)
    with_edges = integ.warp and not primal
    with dr.suspend_grad():
        pix, base, u, ls = _pixel_samples(sampler, W, H, spp, pixels)
        n = dr.width(pix)
        if with_edges:
            # 5 lanes per sample: the interior point and one point on each of the
            # pixel's 4 edges at a shared offset s (opposite edges then nearly
            # cancel, so the flux estimate has low variance).
            s = sampler.next_1d()
            lane = dr.arange(mi.UInt32, 5 * n)
            j = lane // 5
            kind = lane - 5 * j
            edge = kind > 0
            ue, nrm = _edge_points(_gather2(base, j), dr.gather(mi.Float, s, j), kind)
            u = dr.select(edge, ue, _gather2(u, j))
            ls = _gather2(ls, j)
            pix = dr.gather(mi.UInt32, pix, j)
        else:
            edge = dr.zeros(mi.Bool, n)
        dr.eval(u, ls, pix, edge)
    L, V, div, alpha = integ.radiance(scene, proj, u, ls, use_warp=integ.warp and not primal)
    if with_edges:
        flux = -(V.x * nrm.x + V.y * nrm.y)
        value = dr.select(edge, dr.detach(L) * flux, L * (1.0 + div))
    else:
        value = L * (1.0 + div) if integ.warp and not primal else L
    channels = film.base_channels_count()
    inv = 1.0 / spp
    slots = W * H if pixels is None else dr.width(pixels)
    img = dr.zeros(mi.Float, slots * channels)
    comps = [value.x, value.y, value.z]
    if channels == 4:
        comps.append(dr.select(edge, 0.0, alpha))
    for c, comp in enumerate(comps[:channels]):
        dr.scatter_reduce(dr.ReduceOp.Add, img, comp * inv, pix * channels + c)
    return mi.TensorXf(img, (H, W, channels) if pixels is None else (slots, channels))


def shade(integ, scene, proj, u, ls, use_warp):
    """Radiance along the (warped) primary ray through u: (L, V, div, alpha)."""
    import drjit as dr
    import mitsuba as mi
    src = integ.source
    with dr.suspend_grad():
        o, d, dox, doy, ddx, ddy = proj.ray(u)
        do, dd = [dox, doy], [ddx, ddy]
        far = 1e30
        si0 = scene.ray_intersect(mi.Ray3f(o, d, far))
        t0, t1, dt0, dt1, _ = src.interval(o, d, do, dd)
        # The nearer mesh caps the traced segment (t and its u-derivative).
        cap = si0.is_valid() & (si0.t < t1)
        n_m = si0.n
        dtm = [-(dr.dot(n_m, do[a]) + si0.t * dr.dot(n_m, dd[a])) / dr.dot(n_m, d) for a in range(2)]
        t1 = dr.select(cap, dr.maximum(si0.t, t0), t1)
        dt1 = [dr.select(cap, dtm[a], dt1[a]) for a in range(2)]
        streaming = use_warp and (integ.top_k == 0 or integ.top_k >= integ.max_steps)
        if not streaming:
            tr = sphere_trace(src, o, d, do, dd, t0, t1, dt0, dt1, integ.max_steps, integ.lambda_d,
                              integ.epsilon, HIT_EPS, record=use_warp)
            t_last, hit = tr.t_last, tr.hit
    if streaming:
        # all tracer points, summed while tracing (no per-point buffers)
        t_last, _, hit, wp = traced_warp(src, proj, o, d, do, dd, t0, t1, dt0, dt1, integ.max_steps,
                                         integ.gamma, integ.lambda_d, integ.epsilon, HIT_EPS)
        V, div = wp.V, wp.div
    elif use_warp:
        wp = compute_warp(src, proj, tr, o, d, do, dd, integ.gamma, integ.lambda_d, integ.top_k)
        V, div = wp.V, wp.div
    else:
        V, div = mi.Vector2f(0.0), mi.Float(0.0)
    uw = u + V                                  # value u, θ-derivative V   (T(u, θ))
    ow, dw, maxt = proj.ray_simple(uw)
    # SDF hit, differentiable through the implicit function theorem:
    # f(o + t d; θ) = 0  ⇒  t = t̃ − (f − f̃) / (∇f·d)
    tt = t_last
    fa, ga = src.eval(ow + tt * dw, 1)
    gd = dr.detach(dr.dot(ga, dw))
    gd = dr.select(gd >= 0, 1.0, -1.0) * dr.maximum(dr.abs(gd), GRAZING)   # (biased only there)
    t_hit = tt - (fa - dr.detach(fa)) / gd
    x = ow + t_hit * dw
    ray_w = mi.Ray3f(ow, dw, maxt)
    si = scene.ray_intersect(ray_w)
    sdf_hit = hit & ~(si.is_valid() & (si.t < dr.detach(t_hit)))
    L_sdf = integ.surface_radiance(scene, x, dw, ls, sdf_hit)
    L_other = integ.other_radiance(scene, si, ray_w, ls, ~sdf_hit)
    L = dr.select(sdf_hit, L_sdf, L_other)
    alpha = dr.select(sdf_hit | si.is_valid(), 1.0, 0.0)
    return L, V, div, alpha


def direct_light(integ, scene, p, n, ls, active):
    """(ds, emitter weight, visibility) of one emitter sample seen from p with normal n."""
    import drjit as dr
    import mitsuba as mi
    it = dr.zeros(mi.Interaction3f)
    it.p = p
    it.n = n
    ds, em_w = scene.sample_emitter_direction(it, ls, False, active)
    with dr.suspend_grad():
        po = dr.detach(p) + SHADOW_OFFSET * dr.detach(n) * dr.sign(dr.dot(dr.detach(n), ds.d))
        dist = dr.detach(ds.dist) * (1.0 - 1e-3)
        vis = trace_visibility(integ.source, po, dr.detach(ds.d), dist, integ.max_steps, HIT_EPS)
        vis &= ~scene.ray_test(mi.Ray3f(po, dr.detach(ds.d), dist), active)
    return ds, em_w, vis


def lambert(integ, scene, x, n, albedo, ls, active):
    import drjit as dr
    import mitsuba as mi
    ds, em_w, vis = direct_light(integ, scene, x, n, ls, active)
    cos = dr.maximum(dr.dot(n, ds.d), 0.0)
    return dr.select(vis & active, albedo * (cos / math.pi) * em_w, 0.0)
