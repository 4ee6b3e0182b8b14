"""Image formation for the SDF integrators (box pixel filter, Eq. 4 + pixel-edge flux).

Per pixel U (box filter) and sample u ∈ U, the reparameterized estimator
(Eq. 4) contributes L(T(u)) · |det ∂u T|, where T(u) = u + V has value u and
θ-derivative V, and |det| has value 1 and θ-derivative div V. Since the
pixel's own edges do not move with the warp, ∂θ I_p also contains the flux
−∮_∂U L V·n ds: each of the pixel's spp samples also takes one point s_k on
each of its 4 edges (unit length) and adds −Σ_e L(s_e) V(s_e)·n_e, a term
whose value is 0. The edge points of a pixel form a randomly shifted lattice

    s_k = frac(ξ_p + k / spp),   k = 0 … spp − 1,   ξ_p uniform        (E1)

so each edge's spp points are evenly spaced along it. Where a silhouette
crosses an edge the flux integrand jumps; the error of evenly spaced points
then falls as 1/spp, that of independent ones as 1/√spp. A whole film traces
an edge between two pixels once and adds its flux to both (their normals are
opposite): 3 lanes per sample (interior, top, left) and the film's bottom and
right borders, instead of 5; so does each band of whole rows that a render in
passes takes (``rvs_mi.passes``). In primal mode only the interior samples are
traced.

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

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from .camera import Projection
from .shading import shade


def render_sdf(opts, source, albedo, scene, sensor, sampler, spp, primal: bool, pixels=None,
               whole_rows=False):
    """The image (TensorXf H×W×C) with the AD graph of the warped estimator.

    ``sampler`` is seeded for one wavefront of ``spp`` samples per slot. With
    ``pixels`` (``mi.UInt32`` film pixel indices, row-major) only those
    pixels are rendered, with the same estimator (interior samples and the
    flux through the pixel's own edges), as an (N, C) tensor. ``whole_rows``:
    ``pixels`` are a band of whole film rows in order, whose pixels share the
    edges between them as a whole film does.
    """
    proj = Projection.from_sensor(sensor)
    source = source.evaluator()         # shared by the centre trace (C1) and the samples
    film = sensor.film()
    W, H = (int(v) for v in film.crop_size())
    use_warp = opts.warp and not primal
    slots = W * H if pixels is None else dr.width(pixels)
    channels = film.base_channels_count()
    shape = (H, W, channels) if pixels is None else (slots, channels)
    with dr.suspend_grad():
        pix, base, u, ls = _pixel_samples(sampler, W, H, spp, pixels, opts.emitter_samples)
        dr.eval(pix, u, ls)
    L, V, div, alpha = shade(opts, source, albedo, scene, proj, u, ls, use_warp)
    if not use_warp:
        return mi.TensorXf(_accumulate(slots * channels, channels, spp, L, alpha, pix), shape)
    with dr.suspend_grad():
        edges = _Edges.of(sampler, W, spp, pix, base, ls, pixels is None or whole_rows)
        dr.eval(edges.u, edges.ls, edges.slot, edges.other)
    Le, Ve = shade(opts, source, albedo, scene, proj, edges.u, edges.ls, use_warp, flux=True)[:2]
    Lp = Lp_own = Lp_other = mi.Color3f(0.0)
    if opts.streams(use_warp):
        Lp = _centre_radiance(opts, source, albedo, scene, proj, W, H, pixels)
        Lp_own, Lp_other = dr.gather(mi.Color3f, Lp, edges.slot), dr.gather(mi.Color3f, Lp, edges.other)
        Lp = dr.gather(mi.Color3f, Lp, pix)
    Vn = Ve.x * edges.normal.x + Ve.y * edges.normal.y
    img = _accumulate(slots * channels, channels, spp, L * (1.0 + div) - Lp * div, alpha, pix)  # (C1)
    img = _accumulate(img, channels, spp, -(Le - Lp_own) * Vn, None, edges.slot)
    if pixels is None or whole_rows:      # the neighbour sharing the edge has the outward normal −n
        img = _accumulate(img, channels, spp, (Le - Lp_other) * Vn, None, edges.other, edges.has_other)
    return mi.TensorXf(img, shape)


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


@dataclass
class _Edges:
    """The pixel-edge lanes of one render (E1): each traces u on an edge of kind 1-4
    (``_edge_points``) and adds the flux through it to its own slot, and where the edge is
    shared with a neighbouring pixel, to the neighbour's slot too (``other``, ``has_other``)."""
    slot: object        # UInt32
    u: object           # Vector2f, on the edge
    ls: list            # light samples
    normal: object      # Vector2f, the edge's outward normal for ``slot``
    other: object       # UInt32, the neighbour sharing the edge
    has_other: object   # Bool

    @classmethod
    def of(cls, sampler, W, spp, pix, base, ls, whole_rows):
        """One point s on each edge per sample (E1): a pixel subset's own 4 edges, or, where the
        slots are whole rows of W pixels (a film or a band of it), their edges each traced once
        (``_shared_edges``)."""
        xi = sampler.next_1d()
        rows = dr.width(pix) // (spp * W)
        j, kind = _shared_edges(W, rows, spp) if whole_rows else _own_edges(dr.width(pix))
        slot = dr.gather(mi.UInt32, pix, j)
        b = _gather2(base, j)
        u, normal = _edge_points(b, edge_offsets(xi, j, spp), kind)
        # the slot above shares a top edge, the slot to the left a left edge
        above, left = (kind == 1) & (slot >= W), (kind == 3) & (b.x > 0)
        has_other = (above | left) if whole_rows else dr.zeros(mi.Bool, dr.width(j))
        other = dr.select(above, slot - W, dr.select(left, slot - 1, slot))
        return cls(slot, u, [_gather2(v, j) for v in ls], normal, other, has_other)


def edge_offsets(xi, j, spp):
    """(E1) s = frac(ξ_p + k/spp) of sample j = p·spp + k, with ξ_p = ``xi[p·spp]``, the
    uniform number of the slot's first sample."""
    k = j % spp
    s = dr.gather(mi.Float, xi, j - k) + mi.Float(k) * (1.0 / spp)
    return s - dr.floor(s)


def _gather2(v, j):
    return dr.gather(mi.Vector2f, mi.Vector2f(v), j)


def _own_edges(n):
    """(sample index, edge kind) of the edge lanes of n samples: their 4 edges each."""
    j = dr.arange(mi.UInt32, n)
    return dr.concat([j] * 4), dr.concat([dr.full(mi.UInt32, e, n) for e in range(1, 5)])


def _shared_edges(W, H, spp):
    """(sample index, edge kind) of the edge lanes of H whole rows of W pixels: every sample's
    top and left edge, then the bottom edges of the last row and the right edges of the last
    column."""
    n = W * H * spp
    j = dr.arange(mi.UInt32, n)
    bottom = dr.arange(mi.UInt32, (H - 1) * W * spp, n)            # the last row's samples
    m = dr.arange(mi.UInt32, H * spp)
    right = ((m // spp) * W + W - 1) * spp + m % spp               # the last column's samples
    parts = [(j, 1), (j, 3), (bottom, 2), (right, 4)]
    return (dr.concat([p for p, _ in parts]),
            dr.concat([dr.full(mi.UInt32, e, dr.width(p)) for p, e in parts]))


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


def _accumulate(img, channels, spp, value, alpha, slot, active=True):
    """``img`` (or its size, for zeros) plus Σ over the ``active`` lanes of each slot of value
    (RGB) and alpha (4th channel; None: none added), / spp."""
    if isinstance(img, int):
        img = dr.zeros(mi.Float, img)
    comps = [value.x, value.y, value.z, alpha][:channels]
    for c, comp in enumerate(comps[:3] if alpha is None else comps):
        dr.scatter_reduce(dr.ReduceOp.Add, img, comp * (1.0 / spp), slot * channels + c, active)
    return img
