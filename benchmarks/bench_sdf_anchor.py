"""SDF silhouette gradients against Mitsuba's ``direct_projective`` on a triangle mesh.

The same sphere and torus are rendered two ways: as an analytic SDF by
``sdf_reparam`` and as a fine triangle mesh (UV tessellation with analytic
vertex normals) by ``direct_projective``. Emissive (radiance 0.8 on black;
the mesh is an area emitter) and diffuse (albedo 0.8 under a directional
emitter; the SDF shades with one emitter sample and shadow rays, the mesh
with ``direct_projective``'s own estimator). Perspective view, box filter.

For each case the script reports, in this order:

1. the primal images' agreement, |I_sdf − I_mesh|₁ / |I_sdf|₁ at ``--fd-spp``;
2. for a translation (x of the centre) and a scale (sphere radius; torus
   major radius, every mesh vertex moved along its unit radial direction in
   the ring's plane), the forward-mode gradient image of each method at
   ``--spp``, over ``--seeds`` seeds:

   * err: |mean_s g_s − FD| / |FD| (L2 over pixels) and the same for a single seed;
   * var: Σ_pixels Var_s(g_s), the seed-to-seed variance of one gradient image;
   * ms: median time of one gradient render (forward mode, after a warm-up);
   * var×time, and its ratio sdf / mesh (< 1: the SDF is more efficient).

   FD is a central difference of the SDF's primal image with a stratified
   sampler (``--fd-spp`` strata per pixel, the same seed on both sides).
   Both methods' primal images agree first, so one reference serves both.

With ``--split`` the script reports instead where the variance of the emissive
translation gradient comes from: the interior term and the pixel-edge flux
alone, with the edge points as the lattice (E1) of ``rvs_mi.sdf.render`` or
independent per sample, and with the ``stratified`` sampler.

    python benchmarks/bench_sdf_anchor.py [--res 64] [--spp 64] [--seeds 8] [--split]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from common import variant, write_json

SHAPES = {"sphere": {"radius": 0.6}, "torus": {"radius": 0.6, "minor_radius": 0.25}}
CAMERAS = {"sphere": [0.3, 0.4, 4.5], "torus": [0.0, 2.6, 3.6]}
LIGHT = {"type": "directional", "direction": [-0.5, -1.0, -0.6], "irradiance": {"type": "rgb", "value": 3.0}}


def sphere_mesh(r, n):
    """UV sphere of radius r: n segments around, n/2 from pole to pole; (vertices, faces, normals)."""
    th = np.linspace(0, np.pi, n // 2 + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    rings = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    nrm = np.concatenate([rings, [[0, 0, 1.0], [0, 0, -1.0]]])
    top, bottom, last = len(rings), len(rings) + 1, len(th) - 1
    j = np.arange(n)
    caps = [np.stack([np.full(n, top), j, (j + 1) % n], 1),
            np.stack([np.full(n, bottom), last * n + (j + 1) % n, last * n + j], 1)]
    faces = np.concatenate([_grid_faces(len(th), n)] + caps)
    return nrm * r, faces, nrm


def torus_mesh(R, r, n):
    """Torus (ring in z = 0) with n segments around the ring, n/2 around the tube."""
    u = np.linspace(0, 2 * np.pi, n, endpoint=False)
    v = np.linspace(0, 2 * np.pi, n // 2, endpoint=False)
    U, V = np.meshgrid(u, v, indexing="ij")
    e = np.stack([np.cos(U), np.sin(U), np.zeros_like(U)], -1)
    nrm = e * np.cos(V)[..., None] + np.array([0, 0, 1.0]) * np.sin(V)[..., None]
    verts = (R * e + r * nrm).reshape(-1, 3)
    return verts, _grid_faces(n, n // 2, wrap_rows=True), nrm.reshape(-1, 3)


def _grid_faces(rows, cols, wrap_rows=False):
    """Two triangles per cell of a rows × cols vertex grid (columns wrap around)."""
    faces = []
    for i in range(rows if wrap_rows else rows - 1):
        i2 = (i + 1) % rows
        for j in range(cols):
            j2 = (j + 1) % cols
            a, b, c, d = i * cols + j, i * cols + j2, i2 * cols + j, i2 * cols + j2
            faces += [(a, c, b), (b, c, d)]
    f = np.array(faces, dtype=np.int64)
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return f[keep]


def _sensor(shape, res, spp, sampler="independent"):
    import mitsuba as mi
    return {"type": "perspective", "fov": 30,
            "to_world": mi.ScalarTransform4f().look_at(origin=CAMERAS[shape], target=[0, 0, 0], up=[0, 0, 1]
                                                       if shape == "torus" else [0, 1, 0]),
            "sampler": {"type": sampler, "sample_count": spp},
            "film": {"type": "hdrfilm", "width": res, "height": res, "rfilter": {"type": "box"},
                     "pixel_format": "rgb"}}


def sdf_scene(shape, shading, res, spp, sampler="independent"):
    import mitsuba as mi
    geo = SHAPES[shape]
    integ = {"type": "sdf_reparam", "sdf_shape": shape, "sdf_radius": geo["radius"], "shading": shading,
             "albedo": {"type": "rgb", "value": 0.8}}
    if shape == "torus":
        integ["sdf_minor_radius"] = geo["minor_radius"]
    scene = {"type": "scene", "integrator": integ, "sensor": _sensor(shape, res, spp, sampler)}
    if shading == "diffuse":
        scene["light"] = LIGHT
    return mi.load_dict(scene)


def mesh_scene(shape, shading, res, spp, folder, segments):
    import mitsuba as mi
    from rvs_mi.sdf.mesh import write_ply
    geo = SHAPES[shape]
    if shape == "sphere":
        v, f, n = sphere_mesh(geo["radius"], segments)
    else:
        v, f, n = torus_mesh(geo["radius"], geo["minor_radius"], segments)
    path = os.path.join(folder, f"{shape}.ply")
    write_ply(path, v, f, n)
    mesh = {"type": "ply", "filename": path}
    if shading == "emissive":
        mesh["bsdf"] = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}
        mesh["emitter"] = {"type": "area", "radiance": {"type": "rgb", "value": 0.8}}
    else:
        mesh["bsdf"] = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.8}}
    # An emissive scene has no indirect silhouettes: sppi = 0, as direct_projective advises.
    integ = {"type": "direct_projective"} if shading == "diffuse" else {"type": "direct_projective", "sppi": 0}
    scene = {"type": "scene", "integrator": integ, "mesh": mesh,
             "sensor": _sensor(shape, res, spp)}
    if shading == "diffuse":
        scene["light"] = LIGHT
    return mi.load_dict(scene), v


def sdf_direction(scene, shape, param):
    """(key, base value, direction) of the SDF parameter."""
    import mitsuba as mi
    params = mi.traverse(scene)
    if param == "translate":
        key = "integrator.sdf.center"
        return key, mi.Point3f(params[key]), mi.Vector3f(1.0, 0.0, 0.0)
    key = "integrator.sdf.radius"
    return key, mi.Float(params[key]), mi.Float(1.0)


def mesh_direction(scene, shape, param, verts):
    """(key, base value, direction) of the mesh's vertex positions for the same motion."""
    import mitsuba as mi
    params = mi.traverse(scene)
    key = [k for k in params.keys() if k.endswith("vertex_positions")][0]
    base = np.array(params[key]).reshape(-1, 3).astype(np.float64)
    if param == "translate":
        d = np.tile([1.0, 0.0, 0.0], (len(base), 1))
    elif shape == "sphere":
        d = base / np.linalg.norm(base, axis=1, keepdims=True)       # d v / d r
    else:
        xy = base.copy()
        xy[:, 2] = 0.0
        d = xy / np.linalg.norm(xy, axis=1, keepdims=True)           # d v / d R
    return key, mi.Float(base.ravel().astype(np.float32)), mi.Float(d.ravel().astype(np.float32))


def forward_gradient(scene, key, base, direction, spp, seed):
    """dI/dθ for value(θ) = base + θ·direction at θ = 0 (forward mode); (image, seconds)."""
    import drjit as dr
    import mitsuba as mi
    params = mi.traverse(scene)
    theta = mi.Float(0.0)
    dr.enable_grad(theta)
    params[key] = base + theta * direction
    params.update()
    start = time.perf_counter()
    img = mi.render(scene, params, spp=spp, seed=seed, seed_grad=seed + 1000)
    dr.forward(theta)
    grad = np.array(dr.grad(img), dtype=np.float64)
    seconds = time.perf_counter() - start
    params[key] = dr.detach(base)
    params.update()
    return grad[..., :3].mean(axis=-1), seconds


def central_fd(scene, key, base, direction, eps, spp):
    import mitsuba as mi
    params = mi.traverse(scene)
    out = []
    for s in (1.0, -1.0):
        params[key] = base + s * eps * direction
        params.update()
        out.append(np.array(mi.render(scene, spp=spp, seed=7), dtype=np.float64)[..., :3].mean(axis=-1))
    params[key] = base
    params.update()
    return (out[0] - out[1]) / (2 * eps)


def measure(scene, key, base, direction, spp, seeds, fd):
    forward_gradient(scene, key, base, direction, spp, 0)          # warm-up: compilation
    grads, times = [], []
    for s in range(seeds):
        g, t = forward_gradient(scene, key, base, direction, spp, s + 1)
        grads.append(g)
        times.append(t)
    G = np.stack(grads)
    norm = np.linalg.norm(fd)
    return {"err_mean": float(np.linalg.norm(G.mean(0) - fd) / norm),
            "err_single": float(np.mean([np.linalg.norm(g - fd) / norm for g in G])),
            "var": float(G.var(axis=0, ddof=1).sum()), "ms": 1000 * statistics.median(times)}


class _Terms:
    """Keeps one term of ``sdf_reparam``'s gradient (``rvs_mi.sdf.render``): "interior" (the
    flux's V set to 0), "edges" (div V set to 0) or "both"; ``independent`` draws the edge
    points independently per sample instead of the lattice (E1)."""

    def __init__(self, keep="both", independent=False):
        self.keep, self.independent = keep, independent

    def __enter__(self):
        import drjit as dr
        import mitsuba as mi
        import rvs_mi.sdf.render as render
        self.saved = render.shade, render.edge_offsets
        shade, keep = render.shade, self.keep

        def term(*args, **kwargs):
            L, V, div, alpha = shade(*args, **kwargs)
            if keep == "interior":
                V = mi.Vector2f(0.0 * V.x, 0.0 * V.y)
            elif keep == "edges":
                div = 0.0 * div
            return L, V, div, alpha
        render.shade = term
        if self.independent:
            render.edge_offsets = lambda xi, j, spp: dr.gather(mi.Float, xi, j)
        return self

    def __exit__(self, *exc):
        import rvs_mi.sdf.render as render
        render.shade, render.edge_offsets = self.saved


def variance_split(args):
    """Σ_pixels Var_seeds of the emissive translation gradient, by term (``_Terms``)."""
    cases = [("sphere", "independent", True), ("sphere", "independent", False),
             ("torus", "independent", False), ("torus", "stratified", False)]
    print("| scene | sampler | edge points | interior term | pixel-edge flux | both |")
    print("|---|---|---|---|---|---|")
    rows = []
    for shape, sampler, independent in cases:
        scene = sdf_scene(shape, "emissive", args.res, args.spp, sampler)
        direction = sdf_direction(scene, shape, "translate")
        var = {}
        for keep in ("interior", "edges", "both"):
            with _Terms(keep, independent):
                forward_gradient(scene, *direction, args.spp, 0)            # warm-up
                G = np.stack([forward_gradient(scene, *direction, args.spp, s + 1)[0]
                              for s in range(args.seeds)])
            var[keep] = float(G.var(axis=0, ddof=1).sum())
        rows.append({"shape": shape, "sampler": sampler, "independent": independent, **var})
        print(f"| {shape} | {sampler} | {'independent' if independent else 'lattice (E1)'} | "
              f"{var['interior']:.3g} | {var['edges']:.3g} | {var['both']:.3g} |", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--fd-spp", type=int, default=4096, help="strata per pixel of the FD (a square)")
    ap.add_argument("--fd-eps", type=float, default=2e-3)
    ap.add_argument("--segments", type=int, default=512, help="mesh segments around (n/2 across)")
    ap.add_argument("--shapes", default="sphere,torus")
    ap.add_argument("--shadings", default="emissive,diffuse")
    ap.add_argument("--split", action="store_true",
                    help="only the variance of the emissive translation gradient by term (interior, edges)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import rvs_mi
    rvs_mi.init(variant())
    if args.split:
        print(f"{args.res}², spp {args.spp}, {args.seeds} seeds: Σ_pixels Var_seeds of d I / d x (emissive)")
        write_json(args.json, {"args": vars(args), "split": variance_split(args)})
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for shape in args.shapes.split(","):
            for shading in args.shadings.split(","):
                sdf = sdf_scene(shape, shading, args.res, args.spp)
                sdf_fd = sdf_scene(shape, shading, args.res, args.fd_spp, "stratified")
                mesh, verts = mesh_scene(shape, shading, args.res, args.spp, folder, args.segments)
                import mitsuba as mi
                ref = np.array(mi.render(sdf_fd, seed=3), dtype=np.float64)[..., :3]
                other = np.array(mi.render(mesh, spp=args.fd_spp, seed=3), dtype=np.float64)[..., :3]
                primal = float(np.abs(ref - other).sum() / np.abs(ref).sum())
                print(f"{shape} {shading}: primal |I_sdf - I_mesh|_1 / |I_sdf|_1 = {primal:.4f}", flush=True)
                for param in ("translate", "scale"):
                    fd = central_fd(sdf_fd, *sdf_direction(sdf_fd, shape, param), args.fd_eps, args.fd_spp)
                    a = measure(sdf, *sdf_direction(sdf, shape, param), args.spp, args.seeds, fd)
                    b = measure(mesh, *mesh_direction(mesh, shape, param, verts), args.spp, args.seeds, fd)
                    rows.append({"shape": shape, "shading": shading, "param": param, "primal": primal,
                                 "sdf": a, "mesh": b,
                                 "eff_ratio": a["var"] * a["ms"] / (b["var"] * b["ms"])})
                    print(_row(rows[-1]), flush=True)
    print(f"\n{args.res}², spp {args.spp}, {args.seeds} seeds, FD {args.fd_spp} strata, eps {args.fd_eps}, "
          f"mesh {args.segments} segments; variant {variant()}\n")
    print("| shape | shading | param | primal diff | err of mean (sdf / mesh) | err 1 seed (sdf / mesh) "
          "| var (sdf / mesh) | ms (sdf / mesh) | var×time sdf / mesh |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    write_json(args.json, {"args": vars(args), "rows": rows})
    return 0


def _row(r):
    a, b = r["sdf"], r["mesh"]
    return (f"| {r['shape']} | {r['shading']} | {r['param']} | {r['primal']:.4f} | "
            f"{a['err_mean']:.3f} / {b['err_mean']:.3f} | {a['err_single']:.3f} / {b['err_single']:.3f} | "
            f"{a['var']:.3g} / {b['var']:.3g} | {a['ms']:.0f} / {b['ms']:.0f} | {r['eff_ratio']:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
