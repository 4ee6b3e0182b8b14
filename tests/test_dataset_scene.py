"""Datasets as first-class input: sRGB compositing, the box from the cameras, the volume scene
built from [volume], one background, and the config key listing."""
import json
import math
import os

import mitsuba as mi
import numpy as np
import pytest

from rvs_mi.errors import UserError
from rvs_mi.optimize.cameras import look_at, rig_positions
from rvs_mi.optimize.config import load_config
from rvs_mi.optimize.dataset import Split, load_dataset, srgb_to_linear
from rvs_mi.optimize.problem import setup_problem
from rvs_mi.optimize.volume_scene import camera_bounds, project

FOV = 40.0


def _sphere_masks(radius, center, views, res):
    """Exact alpha masks of a sphere seen by cameras on a sphere rig (pixel centres)."""
    c2ws, masks = [], []
    for pos in rig_positions("sphere", views, 4.0, center, seed=1):
        c2w = look_at(pos, center)
        ii, jj = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5, indexing="ij")
        t = math.tan(math.radians(FOV) / 2)
        x, y = -(2 * jj / res - 1) * t, (1 - 2 * ii / res) * t
        d = x[..., None] * c2w[:3, 0] + y[..., None] * c2w[:3, 1] + c2w[:3, 2]
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        oc = c2w[:3, 3] - center
        b = d @ oc
        masks.append((b * b - (oc @ oc - radius**2) > 0).astype(np.float32))
        c2ws.append(c2w)
    return c2ws, masks


def test_projection_matches_mitsuba_rays():
    """project() is the inverse of the Mitsuba perspective sensor's ray generation."""
    from rvs_mi.optimize.cameras import make_sensor
    c2w = look_at([1.0, 2.0, 3.0], [0.1, 0.0, -0.2])
    sensor = make_sensor(c2w, FOV, 8, 6)
    ray, _ = sensor.sample_ray(0.0, 0.0, mi.Point2f(0.2, 0.7), mi.Point2f(0.5))
    p = np.array(ray.o + 2.5 * ray.d).reshape(1, 3)
    col, row, front = project(c2w, FOV, (8, 6), p)
    assert front[0] and col[0] == pytest.approx(0.2 * 8, abs=1e-4) and row[0] == pytest.approx(0.7 * 6, abs=1e-4)


def test_camera_bounds_enclose_the_object_tightly():
    r, center = 0.5, np.array([0.3, -0.2, 0.1])
    c2ws, masks = _sphere_masks(r, center, 16, 48)
    split = Split([], [m[..., None] * np.ones(3) for m in masks], c2ws, FOV, [], alphas=masks)
    lo, hi = camera_bounds(split)
    assert np.all(lo < center - r) and np.all(hi > center + r)       # contains the sphere
    assert np.all(hi - lo < 2 * r * 1.45)                            # visual hull + padding
    split.alphas = None                                              # frusta only: looser
    lo2, hi2 = camera_bounds(split)
    assert np.all(lo2 <= lo + 1e-6) and np.all(hi2 >= hi - 1e-6) and np.all(hi2 - lo2 > 1.5 * (hi - lo))


def _write_dataset(folder, images, c2ws=None):
    os.makedirs(os.path.join(folder, "train"), exist_ok=True)
    from rvs_mi.optimize.cameras import mitsuba_to_gl
    c2ws = c2ws or [look_at([0.0, 0.0, 4.0], [0.0, 0.0, 0.0])]
    frames = []
    images = images if isinstance(images, list) else [images] * len(c2ws)
    for i, (c2w, rgba) in enumerate(zip(c2ws, images)):
        mi.Bitmap(rgba, pixel_format=mi.Bitmap.PixelFormat.RGBA).convert(
            mi.Bitmap.PixelFormat.RGBA, mi.Struct.Type.UInt8, srgb_gamma=False).write(
            os.path.join(folder, "train", f"r_{i}.png"))
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": mitsuba_to_gl(c2w).tolist()})
    with open(os.path.join(folder, "transforms_train.json"), "w") as f:
        json.dump({"camera_angle_x": math.radians(FOV), "frames": frames}, f)
    return folder


def test_compositing_is_on_srgb_values(tmp_path):
    """c = srgb·α + bg·(1 − α) on the 8-bit sRGB values, then linearized (NeRF codes' convention)."""
    rgba = np.zeros((2, 2, 4), np.float32)
    rgba[..., :3] = [0.2, 0.6, 1.0]                      # stored values (sRGB-encoded)
    rgba[..., 3] = [[1.0, 0.6], [0.2, 0.0]]
    folder = _write_dataset(str(tmp_path / "ds"), rgba)
    split = load_dataset(folder, "train", background=(1.0, 1.0, 1.0))
    stored = np.round(rgba * 255) / 255
    a = stored[..., 3:]
    want = srgb_to_linear(stored[..., :3] * a + (1 - a))
    assert np.allclose(split.images[0], want, atol=1e-6)
    assert np.allclose(split.alphas[0], a[..., 0])
    # sRGB decoding itself: the standard's breakpoints
    assert srgb_to_linear([0.04045, 0.5, 1.0]) == pytest.approx([0.04045 / 12.92, 0.21404, 1.0], rel=1e-4)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Four 16x16 RGBA views of a yellow sphere of radius 0.4 (flat colour, exact masks)."""
    folder = str(tmp_path_factory.mktemp("tiny"))
    c2ws, masks = _sphere_masks(0.4, np.zeros(3), 4, 16)
    images = []
    for mask in masks:
        rgba = np.zeros((16, 16, 4), np.float32)
        rgba[..., :3] = [0.9, 0.7, 0.1]
        rgba[..., 3] = mask
        images.append(rgba)
    return _write_dataset(folder, images, c2ws)


def _config(tmp_path, body):
    path = tmp_path / "c.toml"
    path.write_text(body)
    return str(path)


def test_built_volume_scene_from_a_dataset(tiny_dataset, tmp_path):
    config = load_config(_config(tmp_path, f'[references]\ndataset = "{tiny_dataset}"\n'
                                           '[volume]\nresolution = 4\nsh_degree = 1\nradiance_init = 0.5\n'
                                           'density_init = 2.0\noptions = {samples = 2, knots = 0}\n'))
    assert config.optimize.params == ["volume.density.data", "volume.radiance.data"]
    problem = setup_problem(config)
    assert problem.keys == config.optimize.params
    assert tuple(problem.params["volume.density.data"].shape) == (4, 4, 4, 1)
    assert tuple(problem.params["volume.radiance.data"].shape) == (4, 4, 4, 12)
    integrator = problem.scene.integrator()
    assert integrator.properties()["radiance_activation"] == "sigmoid"
    assert integrator.properties()["samples"] == 2
    # white background (RGBA dataset) rendered by the scene: a corner ray misses the box
    image = np.array(mi.render(problem.scene, sensor=problem.train.sensors[0], spp=1))
    assert np.allclose(image[0, 0], 1.0, atol=1e-6)
    # the centre sees the constant medium: radiance sigmoid(0.5) over white, opacity < 1
    s = 1 / (1 + math.exp(-0.5))
    assert s < image[8, 8, 0] < 1.0 and image[8, 8, 0] == pytest.approx(image[8, 8, 2], abs=1e-5)


@pytest.mark.parametrize("body, fragment", [
    ('[scene]\nfile = "{xml}"\n[references]\ndataset = "{ds}"\n[optimize]\nparams = ["x"]\n'
     '[volume]\nresolution = 8\n', "volume.resolution describes the volume scene built"),
    ('[references]\nscene = "{xml}"\n[optimize]\nparams = ["x"]\n',
     "config is missing scene.file"),
    ('[references]\ndataset = "{ds}"\n[scene]\ndefines = {{a = 1}}\n', "scene.defines substitutes"),
    ('[references]\ndataset = "{ds}"\n[volume]\nbounds = [0, 0, 0, 1, -1, 1]\n', "volume.bounds must be"),
    ('[references]\ndataset = "{ds}"\n[volume]\noptions = {{radiance_activation = "relu"}}\n',
     "volume.options.radiance_activation: set it with"),
    ('[references]\ndataset = "{ds}"\n[volume]\nsh_degree = 3\n', "volume.sh_degree must be <= 2"),
])
def test_dataset_config_refused(tiny_dataset, tmp_path, body, fragment):
    from rvs_mi import scenes
    text = body.format(xml=scenes.path("blocks.xml"), ds=tiny_dataset)
    with pytest.raises(UserError, match=fragment):
        load_config(_config(tmp_path, text))


def test_scene_file_must_render_the_dataset_background(tiny_dataset, tmp_path):
    """An XML scene fitted to an RGBA dataset must have the background the images are composited on."""
    from rvs_mi import scenes
    body = (f'[scene]\nfile = "{scenes.path("volume_fit.xml")}"\n[references]\ndataset = "{tiny_dataset}"\n'
            '[optimize]\nparams = ["volume.density.data"]\n')
    with pytest.raises(UserError, match=r"background of .*is \[0.0, 0.0, 0.0\].*references.background = "
                                        r"\[1.0, 1.0, 1.0\]"):
        setup_problem(load_config(_config(tmp_path, body)))
    black = body.replace("[optimize]", "background = [0.0, 0.0, 0.0]\n[optimize]")
    assert setup_problem(load_config(_config(tmp_path, black))).keys == ["volume.density.data"]


def test_keys_listing_is_the_docs_page(capsys):
    from rvs_mi.cli import main
    assert main(["optimize", "--keys"]) == 0
    out = capsys.readouterr().out
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "config.md")
    with open(docs) as f:
        assert f.read().strip() == out.strip(), "docs/config.md is out of date: rvs-mi optimize --keys > docs/config.md"
    for section in ("[scene]", "[references]", "[volume]", "[optimize]", "[sampler]", "[output]"):
        assert f"## {section}" in out


def test_shipped_dataset_config_runs(tiny_dataset, tmp_path):
    """scenes/configs/dataset_rvs.toml on a tiny dataset: trains, improves, exports the scene."""
    from rvs_mi import scenes
    from rvs_mi.optimize.loop import run_optimization
    config = load_config(scenes.path("configs/dataset_rvs.toml"),
                         [f'references.dataset="{tiny_dataset}"', "optimize.steps=12", "upsample.at_steps=[6]",
                          "volume.resolution=4", "output.eval_spp=2", "output.checkpoint_every=0"])
    summary = run_optimization(config, str(tmp_path / "run"), progress=False)
    assert summary["psnr_final"] > summary["psnr_initial"] + 1.0
    assert "result/scene.xml" in summary["exported"]
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert f.readline().startswith("step,loss,train_psnr_linear,")
