"""Scene export (rvs_mi.optimize.export) and the ``rvs-mi turntable`` command."""
import json
import os
import xml.etree.ElementTree as ET

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

import rvs_mi
from rvs_mi.cli import main
from rvs_mi.errors import UserError
from rvs_mi.optimize.export import export_scene
from rvs_mi.scene import load_scene
from rvs_mi.volume.scene import load_volume_scene

OPTIONS = {"radiance_activation": "sigmoid", "density_activation": "relu", "knots": 12, "samples": 4}


def _scene(**kwargs):
    """8³ random density and 12-channel SH radiance in a box turned a quarter about y, scaled
    and shifted (a map Mitsuba's 12-channel grids allow), seen by a perspective camera."""
    rng = np.random.default_rng(7)
    to_world = (mi.ScalarTransform4f().translate([0.1, -0.2, 0.3]).rotate([0, 1, 0], 90)
                .scale([1.5, 1.0, 0.8]).translate([-0.5, -0.5, -0.5]))

    def grid(array):
        return {"type": "gridvolume", "grid": mi.VolumeGrid(array.astype(np.float32)), "to_world": to_world}
    density = grid(3.0 * rng.random((8, 8, 8, 1)))
    radiance = grid(rng.normal(size=(8, 8, 8, 12)))
    return load_volume_scene(density, radiance, "rvs", {**OPTIONS, **kwargs}, camera="perspective",
                             resolution=(16, 16), origin=(2.0, 1.0, 3.0), background=(0.2, 0.3, 0.4))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rvs_mi.init()
    scene = _scene()
    out = str(tmp_path_factory.mktemp("export") / "result")
    return scene, out, export_scene(scene, out)


def test_export_renders_the_same_image(exported):
    scene, out, paths = exported
    assert sorted(paths) == ["density", "radiance", "scene"]
    assert sorted(os.listdir(out)) == ["density.vol", "radiance.vol", "scene.xml"]
    loaded = load_scene(paths["scene"])
    assert loaded.integrator().properties() == scene.integrator().properties()
    want = np.array(mi.render(scene, seed=3, spp=4))
    same_sensor = np.array(mi.render(loaded, sensor=scene.sensors()[0], seed=3, spp=4))
    own_sensor = np.array(mi.render(loaded, seed=3, spp=4))
    assert want.std() > 0.05                                  # a non-trivial image
    np.testing.assert_allclose(same_sensor, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(own_sensor, want, rtol=0, atol=1e-6)
    for name in ("density", "radiance"):
        data = np.array(getattr(scene.integrator(), name).data)
        np.testing.assert_array_equal(np.array(mi.VolumeGrid(paths[name])).reshape(data.shape), data)


def test_export_xml_is_typed_and_takes_res_and_spp(exported):
    _, _, paths = exported
    root = ET.parse(paths["scene"]).getroot()
    integ = root.find("integrator")
    assert (integ.get("type"), integ.get("id")) == ("rvs", "volume")
    typed = {e.get("name"): (e.tag, e.get("value")) for e in integ if e.tag != "volume"}
    assert typed == {"density_activation": ("string", "relu"), "radiance_activation": ("string", "sigmoid"),
                     "jitter": ("boolean", "true"), "knots": ("integer", "12"),
                     "samples": ("integer", "4"), "stratified": ("boolean", "true"),
                     "pass_rays": ("integer", "262144")}
    vol = integ.find("volume[@name='density']")
    assert vol.find("string[@name='filename']").get("value") == "density.vol"
    assert vol.find("boolean[@name='use_grid_bbox']").get("value") == "false"
    assert {d.get("name"): d.get("value") for d in root.findall("default")} == {"res": "16", "spp": "1"}
    bigger = load_scene(paths["scene"], {"res": "8", "spp": "3"})
    assert tuple(bigger.sensors()[0].film().size()) == (8, 8)
    assert bigger.sensors()[0].sampler().sample_count() == 3
    env = np.array(mi.traverse(bigger.environment())["radiance.value"])
    np.testing.assert_array_equal(env.ravel(), np.float32([0.2, 0.3, 0.4]))


def test_export_orthographic_non_square(tmp_path):
    rng = np.random.default_rng(3)
    scene = load_volume_scene(rng.random((8, 8, 8)), rng.random((8, 8, 8, 3)), "volquad",
                              {"knots": 8, "jitter": False}, resolution=(16, 12), spp=2)
    paths = export_scene(scene, str(tmp_path))
    root = ET.parse(paths["scene"]).getroot()
    assert root.find("sensor").get("type") == "orthographic"
    assert {d.get("name"): d.get("value") for d in root.findall("default")} == \
        {"res": "16", "height": "12", "spp": "2"}
    loaded = load_scene(paths["scene"])
    np.testing.assert_allclose(np.array(mi.render(loaded, seed=1)), np.array(mi.render(scene, seed=1)),
                               rtol=0, atol=1e-6)
    assert tuple(load_scene(paths["scene"], {"res": "8", "height": "4"}).sensors()[0].film().size()) == (8, 4)


def test_export_bakes_neural_fields(tmp_path):
    from rvs_mi.volume.neural import attach_neural_fields
    scene = _scene()
    attach_neural_fields(scene.integrator(), levels=2, hashmap_log2=8, hidden=8, density_hidden=8)
    paths = export_scene(scene, str(tmp_path), neural_resolution=4)
    loaded = load_scene(paths["scene"])
    assert np.array(mi.VolumeGrid(paths["density"])).reshape(4, 4, 4, -1).shape == (4, 4, 4, 1)
    assert np.array(mi.VolumeGrid(paths["radiance"])).shape == (4, 4, 4, 3)
    # At voxel centres the baked grid holds the network's outputs.
    to_local = np.array(scene.integrator().density.to_local.matrix, dtype=np.float64).reshape(4, 4)
    to_world = np.linalg.inv(to_local)
    u = (np.stack(np.meshgrid(*[np.arange(4) + 0.5] * 3, indexing="ij"), -1).reshape(-1, 3)[:, ::-1]) / 4
    world = (to_world @ np.c_[u, np.ones(len(u))].T)[:3].astype(np.float32)
    p = mi.Point3f(*(mi.Float(w) for w in world))
    for name in ("density", "radiance"):
        with dr.suspend_grad():
            got = [np.array(c) for c in getattr(loaded.integrator(), name).eval(p)]
            want = [np.array(c) for c in getattr(scene.integrator(), name).eval(p)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="neural_resolution"):
        export_scene(scene, str(tmp_path), neural_resolution=0)


def test_export_refuses_what_it_cannot_write(tmp_path):
    sdf = load_scene(rvs_mi.scenes.path("sdf_sphere.xml"))
    with pytest.raises(UserError, match="only the volume integrators"):
        export_scene(sdf, str(tmp_path / "a"))
    with pytest.raises(UserError, match="a scene with shapes"):
        export_scene(_scene_with_floor(), str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a")


def _scene_with_floor():
    return load_volume_scene(1.0, (0.5, 0.5, 0.5), "rvs", extra={"floor": {"type": "rectangle"}})


def test_export_result_by_integrator(tmp_path):
    """Volume: the scene; SDF: its zero level set as a PLY mesh; anything else: nothing."""
    from rvs_mi.optimize.export import export_result
    sdf = load_scene(rvs_mi.scenes.path("sdf_sphere.xml"))
    (path,) = export_result(sdf, str(tmp_path / "sdf"), mesh_resolution=16)
    assert os.path.basename(path) == "mesh.ply"
    mesh = mi.load_dict({"type": "ply", "filename": path})
    centre = np.array(dr.detach(sdf.integrator().source.center)).ravel()[:3]
    radius = float(np.array(sdf.integrator().source.radius).ravel()[0])
    vertices = np.array(mi.traverse(mesh)["vertex_positions"]).reshape(-1, 3)
    np.testing.assert_allclose(np.linalg.norm(vertices - centre, axis=1), radius, rtol=0.02)
    assert export_result(load_scene(rvs_mi.scenes.path("cbox.xml")), str(tmp_path / "cbox")) == []
    assert not os.path.exists(tmp_path / "cbox")


def test_turntable_frames(exported, tmp_path, capsys):
    _, _, paths = exported
    out = str(tmp_path / "tt")
    assert main(["turntable", paths["scene"], "-o", out, "--frames", "2", "--res", "16", "--spp", "2"]) == 0
    assert sorted(os.listdir(out)) == ["frame_000.png", "frame_001.png"]
    a, b = (np.array(mi.Bitmap(os.path.join(out, f"frame_00{k}.png"))) for k in (0, 1))
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() > 10           # the volume turned
    # Frame 0: from +z at 20° elevation, framing the box's bounding sphere (its centre and
    # half-diagonal from the corners of the placed 8³ grid), with the scene's fov.
    from rvs_mi.imageio import srgb8
    from rvs_mi.optimize.cameras import look_at, make_sensor
    corners = np.array(np.meshgrid([-0.75, 0.75], [-0.5, 0.5], [-0.4, 0.4])).reshape(3, -1).T
    corners = corners[:, [2, 1, 0]] * [1, 1, -1] + [0.1, -0.2, 0.3]  # quarter turn about y
    lo, hi = corners.min(0), corners.max(0)
    radius = 1.15 * 0.5 * np.linalg.norm(hi - lo) / np.sin(np.radians(20.0))
    eye = 0.5 * (lo + hi) + radius * np.array([0.0, np.sin(np.radians(20)), np.cos(np.radians(20))])
    sensor = make_sensor(look_at(eye, 0.5 * (lo + hi)), 40.0, 16, spp=2)
    loaded = load_scene(paths["scene"])
    with dr.suspend_grad():
        want = srgb8(mi.render(loaded, sensor=sensor, spp=2, seed=0))
    assert np.abs(a.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("flags, message", [
    (["--frames", "0"], "--frames must be >= 1"),
    (["--res", "0"], "--res must be >= 1"),
    (["--spp", "-1"], "--spp must be >= 1"),
    (["--radius", "0"], "--radius must be a finite number > 0"),
    (["--radius", "nan"], "--radius must be a finite number > 0"),
    (["--elevation", "90"], "--elevation must be in"),
    (["-D", "1bad=2"], "malformed define"),
])
def test_turntable_bad_flags(exported, tmp_path, capsys, flags, message):
    _, _, paths = exported
    assert main(["turntable", paths["scene"], "-o", str(tmp_path / "tt")] + flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "tt")


def test_turntable_refuses_a_file_as_output_and_a_scene_without_sensor(exported, tmp_path, capsys):
    _, _, paths = exported
    assert main(["turntable", paths["scene"], "-o", paths["scene"], "--frames", "0"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    no_sensor = rvs_mi.scenes.path("volume_fit.xml")
    assert main(["turntable", no_sensor, "-o", str(tmp_path / "tt"), "--frames", "1"]) == 2
    assert "the scene has none" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "tt")


def test_optimize_writes_result_and_timing(tmp_path):
    """A short volume fit: ``result/`` holds the final grids and a scene that renders the run's
    final evaluation image; summary.json lists the files and times every stage."""
    from rvs_mi.imageio import read_image
    from rvs_mi.optimize.config import load_config
    from rvs_mi.optimize.loop import run_optimization
    overrides = ["optimize.steps=2", "references.res=8", "references.views=2", "references.test_views=1",
                 "references.spp=4", "upsample.initial_resolution=8", "upsample.at_steps=[]",
                 'scene.defines={ integrator = "rvs", knots = "16", samples = "4", activation = "softplus" }',
                 "output.checkpoint_every=0", "output.eval_spp=2"]
    config = load_config(rvs_mi.scenes.path("configs/volume_rvs.toml"), overrides)
    summary = run_optimization(config, str(tmp_path), progress=False)
    assert summary["exported"] == ["result/density.vol", "result/radiance.vol", "result/scene.xml"]
    assert set(summary["timing"]) == {"setup", "initial_eval", "steps", "final_eval", "export"}
    assert all(t["wall_s"] > 0 and t["cpu_s"] >= 0 for t in summary["timing"].values())
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["exported"] == summary["exported"]
    params = np.load(tmp_path / "params.npz")
    grid = np.array(mi.VolumeGrid(str(tmp_path / "result" / "density.vol")))
    np.testing.assert_array_equal(grid.reshape(8, 8, 8, 1), params["volume.density.data"])
    scene = load_scene(str(tmp_path / "result" / "scene.xml"))
    image = np.array(mi.render(scene, spp=2, seed=12345))          # evaluate()'s seed for view 0
    np.testing.assert_allclose(image, read_image(str(tmp_path / "result_0.exr")), rtol=1e-3, atol=1e-4)
