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


SPHERE_XML = """<scene version="3.0.0">
    <default name="shading" value="diffuse"/>
    <integrator type="sdf_naive" id="sdf">
        <string name="sdf_shape" value="sphere"/>
        <point name="sdf_center" x="0.1" y="0" z="0"/>
        <float name="sdf_radius" value="0.5"/>
        <rgb name="albedo" value="0.8, 0.55, 0.3"/>
        <string name="shading" value="$shading"/>
        <integer name="emitter_samples" value="8"/>
    </integrator>
    <emitter type="directional">
        <vector name="direction" value="-0.5, -1.0, -0.7"/>
        <rgb name="irradiance" value="2.5, 2.4, 2.2"/>
    </emitter>
    <emitter type="constant"><rgb name="radiance" value="0.15, 0.2, 0.3"/></emitter>
</scene>"""


def _mesh_config(tmp_path, references=None, output=None, shading="diffuse"):
    from rvs_mi.optimize.config import validate
    from rvs_mi.sdf.mesh import sdf_mesh, write_ply
    xml = tmp_path / "sphere.xml"
    xml.write_text(SPHERE_XML)
    ply = tmp_path / "sphere.ply"
    if not ply.exists():
        write_ply(str(ply), *sdf_mesh(_sphere_integrator(), resolution=96))
    refs = {"mesh": str(ply), "views": 3, "test_views": 0, "res": 16, "spp": 512, "radius": 2.5}
    raw = {"scene": {"file": str(xml), "defines": {"shading": shading}},
           "references": {**refs, **(references or {})},
           "optimize": {"params": ["sdf.sdf.center"], "steps": 1}, "output": output or {}}
    return validate(raw, str(tmp_path))


def _interior(sensor, center, radius, res):
    """Pixels whose 4 corners all see the sphere (no silhouette inside the pixel)."""
    import mitsuba as mi
    x, y = np.meshgrid(np.arange(res + 1) / res, np.arange(res + 1) / res)
    rays, _ = sensor.sample_ray(0.0, 0.5, mi.Point2f(x.ravel(), y.ravel()), mi.Point2f(0.5))
    o, d = np.array(rays.o).T - center, np.array(rays.d).T
    b = np.einsum("ij,ij->i", o, d)
    hit = (b * b - (np.einsum("ij,ij->i", o, o) - radius ** 2) > 0).reshape(res + 1, res + 1)
    return hit[:-1, :-1] & hit[1:, :-1] & hit[:-1, 1:] & hit[1:, 1:]


def test_mesh_references_match_the_sdf_integrator(tmp_path):
    """The analytic sphere rendered by sdf_naive (diffuse, 8 emitter samples) and the same
    sphere as a fine mesh rendered as a mesh reference (4096 spp) agree: region means within
    their noise (≈ 0.3%), pixels within the noise of sky-lit ones (≈ 4% rms of the maximum)."""
    import mitsuba as mi
    from rvs_mi.optimize.problem import setup_problem
    problem = setup_problem(_mesh_config(tmp_path, references={"spp": 4096}))
    sums = np.zeros((2, 2))
    for sensor, ref in zip(problem.train.sensors, problem.train.images):
        sdf = np.array(mi.render(problem.scene, sensor=sensor, spp=512, seed=3))[..., :3]
        inside = _interior(sensor, [0.1, 0, 0], R, 16)
        assert inside.sum() > 20
        assert abs(sdf[inside].mean() / ref[inside].mean() - 1) < 0.015
        assert abs(sdf.mean() / ref.mean() - 1) < 0.01
        rms = np.sqrt(np.mean(np.square(sdf - ref)[inside]))
        assert rms < 0.06 * ref[inside].max()
        assert np.abs(sdf - ref).max() < 0.2 * ref.max()           # silhouette pixels too
        sums += [[sdf[inside].sum(), ref[inside].sum()], [sdf.sum(), ref.sum()]]
    assert abs(sums[0, 0] / sums[0, 1] - 1) < 0.005 and abs(sums[1, 0] / sums[1, 1] - 1) < 0.003


def test_mesh_reference_config_rules(tmp_path):
    from rvs_mi.errors import UserError
    from rvs_mi.optimize.problem import setup_problem
    cases = [({"scene": "other.xml"}, None, "exactly one of dataset"),
             ({"defines": {"a": 1}}, None, "references.defines applies only to a reference scene"),
             ({"mesh": "sphere.stl"}, None, "expected a .ply or .obj file")]
    for refs, out, words in cases:
        with pytest.raises(UserError, match=words):
            setup_problem(_mesh_config(tmp_path, references=refs, output=out))
    with pytest.raises(UserError, match="needs exactly one|no effect unless references.mesh"):
        from rvs_mi.optimize.config import validate
        validate({"scene": {"file": "a.xml"}, "references": {"scene": "b.xml"},
                  "optimize": {"params": ["x"]}, "output": {"mesh_resolution": 32}})
    with pytest.raises(UserError, match='shading = "diffuse"'):
        setup_problem(_mesh_config(tmp_path, shading="emissive"))


def test_run_reports_geometry_metrics(tmp_path):
    """A 2-step run against a mesh reference: summary.json has chamfer / normal consistency /
    IoU, initial and final; the SDF is the reference sphere shifted by 0.05."""
    import json
    from rvs_mi.optimize.loop import run_optimization
    config = _mesh_config(tmp_path, references={"spp": 16, "res": 8, "views": 2},
                          output={"mesh_resolution": 32, "eval_spp": 4})
    config.scene.defines = {"shading": "diffuse"}
    xml = (tmp_path / "sphere.xml")
    xml.write_text(SPHERE_XML.replace('x="0.1"', 'x="0.15"'))
    summary = run_optimization(config, str(tmp_path / "run"), progress=False)
    assert json.load(open(tmp_path / "run" / "summary.json"))["iou_final"] == summary["iou_final"]
    assert abs(summary["chamfer_initial"] - 0.05 / 2) < 0.012         # mean offset of shifted spheres
    assert summary["normal_consistency_initial"] > 0.99
    # spheres of radius r with centres d apart: |A ∩ B| = π(4r + d)(2r − d)²/12
    inter = math.pi * (4 * R + 0.05) * (2 * R - 0.05) ** 2 / 12
    assert abs(summary["iou_initial"] / (inter / (2 * 4 / 3 * math.pi * R ** 3 - inter)) - 1) < 0.02
    for k in ("chamfer", "normal_consistency", "iou"):
        assert summary[f"{k}_final"] is not None


def test_sdf_mesh_config_runs(tmp_path):
    """The shipped SDF-from-mesh config (blob mesh, 16³ sphere grid) loads, and 2 steps at a
    tiny size end with geometry metrics: the initial sphere of radius ≈ 0.49 lies within the
    blob's radial displacement (≤ 0.11) of the mesh, and 2 steps move it little."""
    import json
    from rvs_mi import scenes
    from rvs_mi.optimize.config import load_config
    from rvs_mi.optimize.loop import run_optimization
    path = scenes.path("configs/sdf_mesh.toml")
    config = load_config(path)
    assert config.references.mesh.endswith("blob.ply") and config.scene.file.endswith("fit_sdf_mesh.xml")
    small = ["references.res=8", "references.views=2", "references.test_views=1", "references.spp=16",
             "optimize.steps=2", "upsample.at_steps=[1]", "output.mesh_resolution=16", "output.eval_spp=4"]
    summary = run_optimization(load_config(path, small), str(tmp_path / "run"), progress=False)
    saved = json.load(open(tmp_path / "run" / "summary.json"))
    assert saved["steps"] == 2 and saved["chamfer_final"] == summary["chamfer_final"]
    assert 0.01 < summary["chamfer_initial"] < 0.06
    assert abs(summary["chamfer_final"] - summary["chamfer_initial"]) < 0.01
    assert 0.7 < summary["iou_initial"] < 0.95 and summary["iou_final"] > 0.65
