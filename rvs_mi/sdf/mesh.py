"""The zero level set of an SDF integrator's source as a triangle mesh, and a PLY writer.

The SDF is sampled on a regular lattice over the region the renderer traces:

* a grid source: its own box (local [0, 1]³, mapped to world by the inverse of the
  volume's ``to_world``, so a sheared or rotated grid meshes exactly);
* an analytic or neural source: the cube around its traced bounding sphere
  (centre c, radius ``bound_radius()``).

The lattice is padded with one layer of positive values, so a surface cut by
the region's boundary is closed there (the renderer sees nothing outside it).
Triangles are wound counter-clockwise seen from outside (outward geometric
normals), and the vertex normals are ∇f/|∇f| of the source at the vertices.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError

CHUNK = 1 << 20          # lattice points per SDF evaluation


def _lattice_frame(source):
    """(origin, M): world = origin + M·u maps the lattice's u ∈ [0, 1]³ to the traced region."""
    import drjit as dr
    if hasattr(source, "to_local"):                         # grid source
        inv = np.linalg.inv(np.array(source.to_local.matrix, dtype=np.float64).reshape(4, 4))
        return inv[:3, 3], inv[:3, :3]
    c = np.array(dr.detach(source.center), dtype=np.float64).ravel()[:3]
    r = float(np.array(source.bound_radius()).ravel()[0])
    return c - r, np.eye(3) * (2.0 * r)


def evaluate_sdf(source, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f, ∇f) of ``source`` at world points (n, 3), detached, in chunks of CHUNK points."""
    import drjit as dr
    import mitsuba as mi
    f_all, g_all = [], []
    with dr.suspend_grad():
        for s in range(0, len(points), CHUNK):
            p = points[s:s + CHUNK].astype(np.float32)
            x = mi.Point3f(mi.Float(p[:, 0]), mi.Float(p[:, 1]), mi.Float(p[:, 2]))
            f, g = source.eval(x, 1)[:2]
            f_all.append(np.array(f, dtype=np.float64).ravel())
            g_all.append(np.array(g, dtype=np.float64).reshape(3, -1).T)   # (3, n) → (n, 3)
    return np.concatenate(f_all), np.concatenate(g_all)


def in_region(source, points: np.ndarray) -> np.ndarray:
    """Whether world points lie in the lattice's region (outside it the renderer shows no SDF)."""
    origin, M = _lattice_frame(source)
    u = (np.asarray(points, np.float64) - origin) @ np.linalg.inv(M).T
    return np.all((u >= 0) & (u <= 1), axis=1)


def sdf_lattice(source, resolution: int):
    """(values (n, n, n) indexed [i, j, k] along u_x, u_y, u_z; origin; M) at the lattice
    points u = (i + ½)/n (cell centres, the layout of a grid source's voxels)."""
    origin, M = _lattice_frame(source)
    u = (np.arange(resolution) + 0.5) / resolution
    U = np.stack(np.meshgrid(u, u, u, indexing="ij"), axis=-1).reshape(-1, 3)
    f, _ = evaluate_sdf(source, origin + U @ M.T)
    return f.reshape((resolution,) * 3), origin, M


def sdf_mesh(integrator, resolution: int = 128):
    """(vertices (V, 3), faces (F, 3), normals (V, 3)) of the zero level set of the SDF of
    an ``sdf_reparam``/``sdf_naive`` integrator, in world space (float64, int64, float64)."""
    from skimage.measure import marching_cubes
    if not (isinstance(resolution, int) and resolution >= 4):
        raise UserError(f"mesh resolution must be an integer >= 4 (got {resolution!r})")
    source = getattr(integrator, "source", None)
    if source is None:
        raise UserError(f"{type(integrator).__name__} has no SDF (use sdf_reparam or sdf_naive)")
    values, origin, M = sdf_lattice(source, resolution)
    if not (values.min() < 0 < values.max()):
        raise UserError("the SDF has no zero crossing on the lattice (the shape is empty or "
                        "fills its whole bound); no mesh to extract")
    pad = float(np.abs(values).max()) + 1.0
    padded = np.pad(values, 1, constant_values=pad)
    verts, faces, _, _ = marching_cubes(padded, level=0.0)
    u = (verts - 1.0 + 0.5) / resolution                   # padded index → u
    vertices = origin + u @ M.T
    _, g = evaluate_sdf(source, vertices)
    normals = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    faces = faces.astype(np.int64)
    if _mean_alignment(vertices, faces, normals) < 0:
        faces = faces[:, ::-1].copy()
    return vertices, faces, normals


def _mean_alignment(vertices, faces, normals) -> float:
    """Σ over faces of (area-weighted face normal)·(mean vertex normal): > 0 when the
    winding's normals point the way the vertex normals do."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)
    vn = normals[faces].sum(axis=1)
    return float(np.sum(fn * vn))


def write_ply(path, vertices, faces, normals=None) -> None:
    """A binary little-endian PLY: float32 x y z [nx ny nz] per vertex, a uchar-counted
    int32 index list per face (what Mitsuba's ``ply`` shape reads)."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise UserError(f"write_ply: face indices must lie in [0, {len(v)})")
    props = ["x", "y", "z"]
    if normals is not None:
        n = np.asarray(normals, dtype=np.float32).reshape(-1, 3)
        if len(n) != len(v):
            raise UserError(f"write_ply: {len(n)} normals for {len(v)} vertices")
        v = np.concatenate([v, n], axis=1)
        props += ["nx", "ny", "nz"]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}"]
    header += [f"property float {p}" for p in props]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    face_rows = np.zeros(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_rows["n"] = 3
    face_rows["i"] = f
    with open(path, "wb") as out:
        out.write(("\n".join(header) + "\n").encode("ascii"))
        out.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
        out.write(face_rows.tobytes())


def mesh_area(vertices, faces) -> float:
    """Total area of a triangle mesh."""
    v = np.asarray(vertices, dtype=np.float64)
    a, b, c = (v[faces[:, k]] for k in range(3))
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())

