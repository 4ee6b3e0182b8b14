"""Image formation for the SDF integrators (box pixel filter, Eq. 4 + pixel-edge flux).

Per pixel U (box filter) and sample u ∈ U, the reparameterized estimator
(Eq. 4) contributes L(T(u)) · |det ∂u T|, where T(u) = u + V has value u and
θ-derivative V, and |det| has value 1 and θ-derivative div V. Since the
pixel's own edges do not move with the warp, ∂θ I_p also contains the flux
−∮_∂U L V·n ds: each sample also draws one point s uniformly on
each of the pixel's 4 edges (unit length) at a shared offset and adds
−Σ_e L(s_e) V(s_e)·n_e, a term whose value is 0. In primal mode only the interior samples are traced.

Control variate. For any radiance L_p that is constant over the pixel,
∫_U L_p div V du − ∮_∂U L_p V·n ds = 0 (divergence theorem, V continuous),
so L may be replaced by L − L_p in both terms without changing the
expected gradient:

    interior: L (1 + div V) − L_p div V,    edges: −(L − L_p) V·n         (C1)

With L_p the radiance through the pixel's centre (traced once per pixel,
detached, with its own light sample), a sample whose interior and edge
points see the radiance of the centre contributes 0 to the gradient:
inside an emissive shape, whose pixels have no gradient, the terms
otherwise cancel only on average. Applied with the all-points warp
(``top_k`` = 0); with a top-k subset (Eq. 14) it biased a sphere's
translation gradient (11.9% off FD instead of 3.5%), so the divergence
theorem does not hold closely enough for that warp's V and div V.

Works per pixel, so any pixel subset could be rendered the same way provided
the u coordinates are the real sensor's (see ``Projection``).
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .camera import Projection
from .shading import shade


def render_sdf(opts, source, albedo, scene, sensor, sampler, spp, primal: bool, pixels=None):
    """The image (TensorXf H×W×C) with the AD graph of the warped estimator.

    ``sampler`` is seeded for one wavefront of ``spp`` samples per slot. With
    ``pixels`` (``mi.UInt32`` film pixel indices, row-major) only those
    pixels are rendered, with the same estimator (interior samples and the
    flux through the pixel's own edges), as an (N, C) tensor.
    """
    proj = Projection.from_sensor(sensor)
    source = source.evaluator()         # shared by the centre trace (C1) and the samples
    film = sensor.film()
    W, H = (int(v) for v in film.crop_size())
    use_warp = opts.warp and not primal
    with dr.suspend_grad():
        pix, base, u, ls = _pixel_samples(sampler, W, H, spp, pixels, opts.emitter_samples)
        n = dr.width(pix)
        if use_warp:
            # 5 lanes per sample: the interior point and one point on each of the
            # pixel's 4 edges at a shared offset s (opposite edges then nearly
            # cancel, so the flux estimate has low variance).
            pix, u, ls, edge, nrm = _with_edge_lanes(sampler, pix, base, u, ls)
        else:
            edge = dr.zeros(mi.Bool, n)
        dr.eval(u, ls, pix, edge)
    L, V, div, alpha = shade(opts, source, albedo, scene, proj, u, ls, use_warp)
    if use_warp:
        Lp = 0.0
        if opts.streams(use_warp):
            Lp = dr.gather(mi.Color3f, _centre_radiance(opts, source, albedo, scene, proj, W, H, pixels), pix)
        flux = -(V.x * nrm.x + V.y * nrm.y)
        value = dr.select(edge, dr.detach(L - Lp) * flux, L * (1.0 + div) - Lp * div)       # (C1)
    else:
        value = L
    slots = W * H if pixels is None else dr.width(pixels)
    channels = film.base_channels_count()
    img = _accumulate(value, dr.select(edge, 0.0, alpha), pix, slots, channels, spp)
    return mi.TensorXf(img, (H, W, channels) if pixels is None else (slots, channels))


def _centre_radiance(opts, source, albedo, scene, proj, W, H, pixels):
    """L_p of (C1): the detached radiance through the centre of each output slot's pixel (the
    film's pixels row-major, or ``pixels``), with the light sample (0.5, 0.5)."""
    with dr.suspend_grad():
        film_pix = dr.arange(mi.UInt32, W * H) if pixels is None else pixels
        u = mi.Vector2f(mi.Float(film_pix % W) + 0.5, mi.Float(film_pix // W) + 0.5)
        ls = [mi.Point2f(0.5, 0.5)] * opts.emitter_samples
        L = shade(opts, source, albedo, scene, proj, u, ls, False)[0]
        dr.eval(L)
        return dr.detach(L)


def _pixel_samples(sampler, W, H, spp, pixels=None, emitter_samples=1):
    """Output slot, pixel position base, interior position u, light samples (a list of
    ``emitter_samples`` 2-D samples) per sample.

    Without ``pixels`` the slots are the film's pixels (row-major); with a
    ``mi.UInt32`` array of pixel indices, slot j holds pixel ``pixels[j]``.
    """
    n = (W * H if pixels is None else dr.width(pixels)) * spp
    idx = dr.arange(mi.UInt32, n)
    pix = idx // spp
    film_pix = pix if pixels is None else dr.gather(mi.UInt32, pixels, pix)
    px, py = film_pix % W, film_pix // W
    base = mi.Vector2f(mi.Float(px), mi.Float(py))
    u = base + sampler.next_2d()
    ls = [sampler.next_2d() for _ in range(emitter_samples)]
    return pix, base, u, ls


def _with_edge_lanes(sampler, pix, base, u, ls):
    """Samples as 5 lanes each (interior, edges 1-4): (slot, u, light sample, edge?, normal)."""
    s = sampler.next_1d()
    lane = dr.arange(mi.UInt32, 5 * dr.width(pix))
    j = lane // 5
    kind = lane - 5 * j
    edge = kind > 0
    ue, nrm = _edge_points(_gather2(base, j), dr.gather(mi.Float, s, j), kind)
    u = dr.select(edge, ue, _gather2(u, j))
    return dr.gather(mi.UInt32, pix, j), u, [_gather2(v, j) for v in ls], edge, nrm


def _gather2(v, j):
    return dr.gather(mi.Vector2f, mi.Vector2f(v), j)


def _edge_points(base, s, e):
    """Point at parameter s on edge e of the pixel at ``base`` and the outward normal.

    Edges: 1 top (y = py), 2 bottom (y = py + 1), 3 left (x = px), 4 right (x = px + 1).
    """
    horiz = e <= 2
    ue = mi.Vector2f(dr.select(horiz, base.x + s, base.x + mi.Float(e == 4)),
                     dr.select(horiz, base.y + mi.Float(e == 2), base.y + s))
    ne = mi.Vector2f(dr.select(e == 3, -1.0, dr.select(e == 4, 1.0, 0.0)),
                     dr.select(e == 1, -1.0, dr.select(e == 2, 1.0, 0.0)))
    return ue, ne


def _accumulate(value, alpha, pix, slots, channels, spp):
    """Σ over the samples of each slot of value (RGB) and alpha (4th channel), / spp."""
    inv = 1.0 / spp
    img = dr.zeros(mi.Float, slots * channels)
    comps = [value.x, value.y, value.z, alpha]
    for c, comp in enumerate(comps[:channels]):
        dr.scatter_reduce(dr.ReduceOp.Add, img, comp * inv, pix * channels + c)
    return img
