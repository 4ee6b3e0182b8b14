"""Meshes of SDF zero level sets (rvs_mi.sdf.mesh), geometry metrics (rvs_mi.geometry) and
mesh references of ``rvs-mi optimize``, checked against closed forms."""
import math

import numpy as np
import pytest

R = 0.5


def _sphere_integrator(radius=R, center=(0.1, 0.0, 0.0), kind="sdf_naive", **extra):
    import mitsuba as mi
    return mi.load_dict({"type": kind, "sdf_shape": "sphere", "sdf_radius": radius,
                         "sdf_center": mi.ScalarPoint3f(*center), **extra})


def _signed_volume(v, f):
    a, b, c = (v[f[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def test_sphere_mesh_area_orientation_and_ply(tmp_path):
    import mitsuba as mi
    from rvs_mi.sdf.mesh import mesh_area, sdf_mesh, write_ply
    v, f, n = sdf_mesh(_sphere_integrator(), resolution=48)
    assert len(v) > 0 and f.shape[1] == 3
    assert abs(mesh_area(v, f) / (4 * math.pi * R * R) - 1) < 5e-3
    assert abs(_signed_volume(v, f) / (4 / 3 * math.pi * R ** 3) - 1) < 1e-2     # outward winding
    assert np.abs(np.linalg.norm(v - [0.1, 0, 0], axis=1) - R).max() < 2e-3    # world space
    assert np.abs(np.einsum("ij,ij->i", n, (v - [0.1, 0, 0]) / R) - 1).max() < 1e-3
    path = str(tmp_path / "sphere.ply")
    write_ply(path, v, f, n)
    shape = mi.load_dict({"type": "ply", "filename": path})
    assert shape.vertex_count() == len(v) and shape.face_count() == len(f)
    assert abs(float(shape.surface_area()[0]) / mesh_area(v, f) - 1) < 1e-5
    write_ply(str(tmp_path / "plain.ply"), v, f)
    assert mi.load_dict({"type": "ply", "filename": str(tmp_path / "plain.ply")}).face_count() == len(f)


def test_grid_sdf_mesh_follows_the_grid_box():
    """A grid SDF in the box [-1, 1]³ (a B-spline of a 16³ sphere of radius 0.5)."""
    from rvs_mi import scenes
    from rvs_mi.scene import load_scene
    from rvs_mi.sdf.mesh import sdf_mesh
    scene = load_scene(scenes.path("fit_sdf_grid.xml"), {"res": "8"})
    v, f, _ = sdf_mesh(scene.integrator(), resolution=32)
    r = np.linalg.norm(v, axis=1)
    assert abs(r.mean() - 0.49) < 0.01 and r.std() < 0.01


def test_concentric_spheres_chamfer_normals_iou():
    """Spheres of radii r1 < r2 about one centre: Chamfer |r1 − r2|, normal consistency 1,
    IoU (r1/r2)³ (the reference is the r2 mesh, inside by ray parity; the result the r1 SDF)."""
    from rvs_mi.geometry import chamfer_normal_consistency, sdf_geometry_metrics
    from rvs_mi.sdf.mesh import sdf_mesh
    r1, r2, c = 0.4, 0.5, (0.1, 0.0, 0.0)
    outer = sdf_mesh(_sphere_integrator(r2, c), resolution=48)[:2]
    inner_sdf = _sphere_integrator(r1, c)
    cd, nc = chamfer_normal_consistency(sdf_mesh(inner_sdf, 48)[:2], outer, n=4000)
    assert abs(cd / (r2 - r1) - 1) < 0.02
    assert nc > 0.995
    m = sdf_geometry_metrics(inner_sdf, *outer, resolution=48, samples=4000)
    assert abs(m["chamfer"] / (r2 - r1) - 1) < 0.02 and m["normal_consistency"] > 0.995
    assert abs(m["iou"] / (r1 / r2) ** 3 - 1) < 0.02


def test_identical_and_disjoint_shapes():
    from rvs_mi.geometry import distance_to_mesh, sdf_geometry_metrics
    from rvs_mi.sdf.mesh import sdf_mesh
    sdf = _sphere_integrator()
    v, f, _ = sdf_mesh(sdf, 40)
    m = sdf_geometry_metrics(sdf, v, f, resolution=40, samples=2000)
    assert m["chamfer"] < 1e-6 and m["normal_consistency"] > 0.9999 and m["iou"] > 0.99
    far = sdf_geometry_metrics(_sphere_integrator(0.3, (2.0, 0, 0)), v, f, resolution=32, samples=500)
    # the mean of |p − c| over a sphere of radius a about 0 is D + a²/(3D) for |c| = D > a
    D, a, b = 1.9, R, 0.3
    assert far["iou"] == 0.0 and abs(far["chamfer"] / (D + (a * a + b * b) / (6 * D) - (a + b) / 2) - 1) < 0.02
    d, _ = distance_to_mesh(np.array([[0.1, 0, 0], [1.1, 0, 0]]), v, f)   # centre, 0.5 outside
    assert abs(d[0] - R) < 2e-3 and abs(d[1] - 0.5) < 2e-3
