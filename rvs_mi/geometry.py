"""Geometry metrics between a reconstructed surface and a reference mesh.

* **Chamfer distance** (scene units): n points sampled uniformly by area on each
  mesh; each point's exact distance to the *other* mesh's triangles (not to its
  samples, so the number has no sampling-density floor); the mean over each
  mesh's samples, averaged over the two directions:
  ½ (mean_{a∈A} d(a, B) + mean_{b∈B} d(b, A)).
* **Normal consistency** (in [0, 1], 1 = parallel): for the same samples,
  |n·n'| between the sample's face normal and the normal of the closest triangle
  of the other mesh, averaged like the Chamfer distance (orientation-free).
* **Volume IoU** (in [0, 1]): |inside A ∩ inside B| / |inside A ∪ inside B|
  counted on a regular lattice of cell centres. The reference mesh's inside is
  the ray-casting parity (Mitsuba ray tests along 3 directions, majority vote;
  the mesh must be closed); an SDF's inside is f < 0.
"""
from __future__ import annotations

import numpy as np

from .errors import UserError

SAMPLES = 20000          # surface samples per mesh of chamfer / normal consistency
PARITY_DIRECTIONS = np.array([[0.5773, 0.5774, 0.5774], [-0.6, 0.48, 0.64], [0.48, -0.64, -0.6]])
MAX_CROSSINGS = 64       # ray-casting parity: surface crossings followed per ray
MAX_CANDIDATES = 512     # triangles tried per point in distance_to_mesh


def _triangles(vertices, faces):
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise UserError("a mesh needs vertices (V, 3) and at least one face (F, 3)")
    return v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]


def sample_surface(vertices, faces, n: int, seed: int = 0):
    """(points (n, 3), unit face normals (n, 3)): uniform by area on the mesh."""
    a, b, c = _triangles(vertices, faces)
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(area), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)     # uniform barycentrics
    points = w[:, :1] * a[tri] + w[:, 1:2] * b[tri] + w[:, 2:] * c[tri]
    return points, cross[tri] / np.maximum(area[tri], 1e-300)[:, None]


def closest_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) to points p, all (m, 3) (Ericson's regions)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    bp, cp = p - b, p - c
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) > 1e-300, denom, 1e-300)
    v, w = vb / denom, vc / denom
    out = a + ab * v[:, None] + ac * w[:, None]                       # face interior
    cases = [
        ((d1 <= 0) & (d2 <= 0), a),
        ((d3 >= 0) & (d4 <= d3), b),
        ((d6 >= 0) & (d5 <= d6), c),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * _ratio(d1, d1 - d3)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * _ratio(d2, d2 - d6)),
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
         b + (c - b) * _ratio(d4 - d3, (d4 - d3) + (d5 - d6))),
    ]
    done = np.zeros(len(p), bool)
    for mask, q in cases:                 # the first matching region wins, as in Ericson
        m = mask & ~done
        out[m] = q[m]
        done |= mask
    return out


def _dot(x, y):
    return np.einsum("ij,ij->i", x, y)


def _ratio(num, den):
    return (num / np.where(np.abs(den) > 1e-300, den, 1e-300))[:, None]


def distance_to_mesh(points, vertices, faces):
    """(distance, index of the closest triangle) of each point to the mesh, exact.

    Candidates are the triangles with the k nearest centroids; a point whose
    k-th centroid is nearer than (best distance + the largest centroid-vertex
    distance, "reach") may have a closer triangle outside them and is retried
    with 4k, up to MAX_CANDIDATES: beyond that (points far from a fine mesh,
    whose nearest centroids crowd a shell of width reach) the distance is within
    reach of the exact one.
    """
    from scipy.spatial import cKDTree
    a, b, c = _triangles(vertices, faces)
    cent = (a + b + c) / 3.0
    reach = float(np.sqrt(max(((x - cent) ** 2).sum(1).max() for x in (a, b, c))))
    tree = cKDTree(cent)
    p = np.asarray(points, dtype=np.float64)
    dist, tri = np.full(len(p), np.inf), np.zeros(len(p), np.int64)
    todo, k = np.arange(len(p)), min(8, len(cent))
    while len(todo):
        cd, ci = tree.query(p[todo], k=k)
        cd, ci = cd.reshape(len(todo), -1), ci.reshape(len(todo), -1)
        rep = np.repeat(p[todo], ci.shape[1], axis=0)
        q = closest_on_triangles(rep, a[ci.ravel()], b[ci.ravel()], c[ci.ravel()])
        d = np.linalg.norm(rep - q, axis=1).reshape(ci.shape)
        j = d.argmin(1)
        dist[todo], tri[todo] = d[np.arange(len(todo)), j], ci[np.arange(len(todo)), j]
        unsure = (cd[:, -1] < dist[todo] + reach) & (k < min(len(cent), MAX_CANDIDATES))
        todo, k = todo[unsure], min(4 * k, len(cent))
    return dist, tri


def chamfer_normal_consistency(mesh_a, mesh_b, n: int = SAMPLES, seed: int = 0):
    """(Chamfer distance, normal consistency) of two meshes (vertices, faces); see the module."""
    results = []
    for (src, dst), s in (((mesh_a, mesh_b), seed), ((mesh_b, mesh_a), seed + 1)):
        pts, nrm = sample_surface(*src, n, s)
        d, tri = distance_to_mesh(pts, *dst)
        a, b, c = _triangles(*dst)
        fn = np.cross(b[tri] - a[tri], c[tri] - a[tri])
        fn /= np.maximum(np.linalg.norm(fn, axis=1), 1e-300)[:, None]
        results.append((d.mean(), np.abs(_dot(nrm, fn)).mean()))
    return 0.5 * (results[0][0] + results[1][0]), 0.5 * (results[0][1] + results[1][1])


def lattice(lo, hi, resolution: int):
    """Cell centres (resolution³, 3) of the box [lo, hi], x slowest."""
    axes = [lo[k] + (np.arange(resolution) + 0.5) * (hi[k] - lo[k]) / resolution for k in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _mitsuba_mesh(vertices, faces):
    import mitsuba as mi
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces, dtype=np.uint32)
    mesh = mi.Mesh("reference", len(v), len(f), has_vertex_normals=False)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(v.ravel())
    params["faces"] = mi.UInt32(f.ravel())
    params.update()
    return mi.load_dict({"type": "scene", "mesh": mesh})


def mesh_inside(vertices, faces, points) -> np.ndarray:
    """Whether each point lies inside the closed mesh: odd surface crossings along a ray,
    majority of PARITY_DIRECTIONS (one grazing ray cannot flip the answer)."""
    import drjit as dr
    import mitsuba as mi
    scene = _mitsuba_mesh(vertices, faces)
    p = np.asarray(points, dtype=np.float32)
    votes = np.zeros(len(p), np.int32)
    with dr.suspend_grad():
        for d in PARITY_DIRECTIONS / np.linalg.norm(PARITY_DIRECTIONS, axis=1, keepdims=True):
            o = mi.Point3f(mi.Float(p[:, 0]), mi.Float(p[:, 1]), mi.Float(p[:, 2]))
            dv = mi.Vector3f(*[float(x) for x in d])
            count = dr.zeros(mi.UInt32, len(p))
            active = dr.full(mi.Bool, True, len(p))
            for _ in range(MAX_CROSSINGS):
                si = scene.ray_intersect(mi.Ray3f(o, dv), active)
                active &= si.is_valid()
                count += mi.UInt32(active)
                o = dr.select(active, si.p + dv * (1e-5 * (1.0 + dr.abs(si.t))), o)
                dr.eval(o, count, active)
                if not dr.any(active):
                    break
            votes += (np.array(count) % 2).astype(np.int32)
    return votes >= 2


def volume_iou(inside_a, inside_b) -> float:
    """|A ∩ B| / |A ∪ B| of two boolean lattice masks (0 when both are empty)."""
    union = np.count_nonzero(inside_a | inside_b)
    return float(np.count_nonzero(inside_a & inside_b) / union) if union else 0.0


def sdf_geometry_metrics(integrator, ref_vertices, ref_faces, resolution: int = 128,
                         samples: int = SAMPLES, seed: int = 0) -> dict:
    """chamfer, normal_consistency and iou of an SDF integrator's zero level set (meshed at
    ``resolution``) against a reference mesh; the IoU lattice (``resolution``³) spans both
    meshes' bounding box. Without a zero level set chamfer and normal_consistency are None."""
    from .sdf.mesh import evaluate_sdf, in_region, sdf_mesh
    ref = (np.asarray(ref_vertices, np.float64), np.asarray(ref_faces, np.int64))
    try:
        v, f, _ = sdf_mesh(integrator, resolution)
    except UserError:
        v = f = None
    boxes = [ref[0]] + ([v] if v is not None else [])
    lo = np.min([x.min(0) for x in boxes], axis=0)
    hi = np.max([x.max(0) for x in boxes], axis=0)
    pad = 0.05 * (hi - lo).max()
    pts = lattice(lo - pad, hi + pad, resolution)
    sdf_in = (evaluate_sdf(integrator.source, pts)[0] < 0) & in_region(integrator.source, pts)
    out = {"iou": volume_iou(mesh_inside(*ref, pts), sdf_in),
           "chamfer": None, "normal_consistency": None}
    if v is not None:
        cd, nc = chamfer_normal_consistency((v, f), ref, samples, seed)
        out.update(chamfer=float(cd), normal_consistency=float(nc))
    return out
