"""Bad inputs on every surface: refused with one line naming the input, or honoured exactly.

Surfaces: config keys (``load_config`` / ``validate``), settings checked against the scene
(``setup_problem``, before any reference is rendered), NeRF-synthetic datasets
(``load_dataset``), plugin properties (XML through ``load_scene``) and the command line
(``rvs_mi.cli.main`` in-process: exit 2 and one line on stderr). Each case fails before
rendering, so the table runs in seconds.
"""
import json
import os

import mitsuba as mi
import numpy as np
import pytest
from test_optimize import BASE as TEXTURE_CONFIG

from rvs_mi import cli, scenes
from rvs_mi.errors import UserError
from rvs_mi.optimize.config import load_config
from rvs_mi.optimize.dataset import load_dataset
from rvs_mi.optimize.problem import setup_problem
from rvs_mi.scene import load_scene

VOLUME_CONFIG = """
[scene]
file = "{scene}"
[references]
scene = "{ref}"
views = 2
test_views = 0
res = 16
spp = 4
[optimize]
params = ["volume.density.data", "volume.radiance.data"]
steps = 4
"""


def _config(tmp_path, kind="texture"):
    path = tmp_path / f"{kind}.toml"
    if kind == "texture":
        text = TEXTURE_CONFIG.format(scene=scenes.path("textured.xml"))
    else:
        text = VOLUME_CONFIG.format(scene=scenes.path("volume_fit.xml"), ref=scenes.path("blocks.xml"))
    path.write_text(text)
    return str(path)


def _one_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --------------------------------------------------------------------------- config keys
# (overrides, fragment of the one-line error)
CONFIG = {
    "lr_final < 0": (['optimize.lr_schedule="cosine"', "optimize.lr_final=-0.5"], "optimize.lr_final must be >= 0"),
    "huber_delta 0": (['optimize.loss="huber"', "optimize.huber_delta=0"], "optimize.huber_delta must be > 0"),
    "huber_delta < 0": (['optimize.loss="huber"', "optimize.huber_delta=-1"], "optimize.huber_delta must be > 0"),
    "checkpoint_every < 0": (["output.checkpoint_every=-1"], "output.checkpoint_every must be >= 0"),
    "lr_scale string": (['optimize.lr_scale={ "painted.*" = "x" }'], "optimize.lr_scale"),
    "lr_scale negative": (['optimize.lr_scale={ "painted.*" = -1 }'], "optimize.lr_scale"),
    "lr_scale bad regex": (['optimize.lr_scale={ "(" = 2 }'], "bad regular expression"),
    "spp_grad -1": (["optimize.spp_grad=-1"], "optimize.spp_grad must be >= 0"),
    "fov 0": (["references.fov=0"], "references.fov must be > 0"),
    "fov 200": (["references.fov=200"], "references.fov must be < 180"),
    "fov nan": (["references.fov=nan"], "references.fov must be a finite number"),
    "test_views -1": (["references.test_views=-1"], "references.test_views must be >= 0"),
    "clamp lo > hi": (['optimize.clamp={ "painted.reflectance.data" = [1.0, 0.0] }'],
                      "optimize.clamp.'painted.reflectance.data' = [1.0, 0.0]: lo must be <= hi"),
    "clamp nan": (['optimize.clamp={ "painted.reflectance.data" = [nan, 1.0] }'], "optimize.clamp"),
    "clamp one value": (['optimize.clamp={ "painted.reflectance.data" = [1.0] }'], "must be [lo, hi]"),
    "optimize seed -1": (["optimize.seed=-1"], "optimize.seed must be >= 0"),
    "optimize seed 2^32": (["optimize.seed=4294967296"], "optimize.seed must be <= 4294967295"),
    "references seed -3": (["references.seed=-3"], "references.seed must be >= 0"),
    "at_steps non-integer": (["upsample.at_steps=[1.5]"], "upsample.at_steps[0]: expected an integer"),
    "at_steps past the end": (["upsample.at_steps=[10]"], "upsample.at_steps[0] = 10 must be in"),
    "at_steps negative": (["upsample.at_steps=[-1]"], "upsample.at_steps[0] = -1 must be in"),
    "at_steps twice": (["upsample.at_steps=[1, 1]"], "upsample.at_steps has a step twice"),
    "multiscale with adaptive": (['sampler.name="adaptive"', "optimize.multiscale=2"], "optimize.multiscale = 2 needs"),
    "radius nan": (["references.radius=nan"], "references.radius must be a finite number"),
    "radius -1": (["references.radius=-1"], "references.radius must be >= 0"),
    "lr inf": (["optimize.lr=inf"], "optimize.lr must be a finite number"),
    "lr 0": (["optimize.lr=0"], "optimize.lr must be > 0"),
    "background length": (["references.background=[0.0, 0.0]"], "references.background must have 0 or 3 values"),
    "background string": (['references.background=["a", 0, 0]'], "references.background[0]: expected a number"),
    "truth string": (['optimize.truth={ "painted.reflectance.data" = "a" }'], "optimize.truth"),
    "lr_final with constant": (["optimize.lr_final=0.5"], "optimize.lr_final has no effect unless"),
    "huber_delta with l2": (["optimize.huber_delta=0.2"], "optimize.huber_delta has no effect unless"),
    "eikonal_points without eikonal": (["regularizers.eikonal_points=10"], "regularizers.eikonal_points has no effect"),
    "sdf_params without redistance": (['regularizers.sdf_params=["x"]'], "regularizers.sdf_params has no effect"),
    "upsample.params without upsampling": (['upsample.params=["x"]'], "upsample.params has no effect"),
    "regularizers.params without weights": (['regularizers.params=["x"]'], "regularizers.params has no effect"),
    "background with a scene": (["references.background=[1.0, 1.0, 1.0]"], "references.background applies only"),
    "max_views with a scene": (["references.max_views=1"], "references.max_views applies only"),
    "budget fractional count": (['sampler.name="uniform"', "sampler.budget=2.5"], "sampler.budget = 2.5"),
    "budget with the full sampler": (["sampler.budget=0.5"], "sampler.budget has no effect"),
    "beta with the uniform sampler": (['sampler.name="uniform"', "sampler.beta=0.5"], "sampler.beta has no effect"),
    "tile with adaptive views only": (['sampler.view_choice="adaptive"', "sampler.tile=4"],
                                      "sampler.tile has no effect"),
    "budget 0": (["sampler.budget=0"], "sampler.budget must be > 0"),
    "beta 0": (["sampler.beta=0"], "sampler.beta must be > 0"),
    "beta 2": (["sampler.beta=2"], "sampler.beta must be <= 1"),
    "defines list": (["scene.defines={ a = [1, 2] }"], "scene.defines.a: expected a string"),
    "steps 0": (["optimize.steps=0"], "optimize.steps must be >= 1"),
    "res negative": (["references.res=-1"], "references.res must be >= 0"),
    "params empty": (["optimize.params=[]"], "optimize.params must be a non-empty list"),
    "params not strings": (["optimize.params=[1]"], "optimize.params[0]: expected a string"),
    "eval_spp 0": (["output.eval_spp=0"], "output.eval_spp must be >= 1"),
    "views fractional": (["references.views=1.5"], "references.views: expected an integer"),
    "spp boolean": (["optimize.spp=true"], "optimize.spp: expected an integer"),
    "unknown key": (["optimize.stepz=3"], "unknown config key optimize.stepz"),
    "rig unknown": (['references.rig="cube"'], "references.rig = 'cube': choose one of"),
}


@pytest.mark.parametrize("case", sorted(CONFIG))
def test_config_key_refused(case, tmp_path):
    overrides, fragment = CONFIG[case]
    with pytest.raises(UserError) as info:
        load_config(_config(tmp_path), overrides)
    assert fragment in _one_line(str(info.value))


# --------------------------------------------------------------------------- settings vs the scene
# (config kind, overrides, fragment): refused by setup_problem before any reference is rendered
SETUP = {
    "lr_scale matches nothing": ("texture", ['optimize.lr_scale={ "nothing.*" = 2 }'],
                                 "optimize.lr_scale: 'nothing.*' matches no optimized parameter"),
    "clamp matches nothing": ("texture", ['optimize.clamp={ "nothing" = [0, 1] }'],
                              "optimize.clamp: 'nothing' matches no optimized parameter"),
    "params unknown": ("texture", ['optimize.params=["nothing"]'], "config optimize.params: parameter 'nothing'"),
    "truth wrong length": ("texture", ['optimize.truth={ "painted.reflectance.data" = [1.0, 2.0] }'],
                           "optimize.truth.'painted.reflectance.data' has 2 values"),
    "truth unknown key": ("texture", ['optimize.truth={ "nothing" = 1.0 }'], "optimize.truth: 'nothing' is not"),
    "tv without grids": ("texture", ["regularizers.tv=0.1"], "config regularizers.tv/laplacian acts on"),
    "upsample without grids": ("texture", ["upsample.initial_resolution=8"], "config upsample acts on"),
    "multiscale too deep": ("texture", ["optimize.multiscale=9"], "optimize.multiscale = 9: 16x16"),
    "upsample.params matches nothing": ("volume", ["upsample.at_steps=[1]", 'upsample.params=["nothing"]'],
                                        "upsample.params: 'nothing' matches no optimized 3-D grid"),
    "regularizers.params matches nothing": ("volume", ["regularizers.tv=0.1", 'regularizers.params=["x"]'],
                                            "regularizers.params: 'x' matches no optimized 3-D grid"),
    "sdf_params matches nothing": ("volume", ["regularizers.redistance_every=2", 'regularizers.sdf_params=["x"]'],
                                   "regularizers.sdf_params: 'x' matches no optimized 3-D grid"),
    "neural option fractional": ("volume", ["scene.neural={ levels = 2.5 }"], "scene.neural.levels must be an integer"),
    "neural option unknown": ("volume", ["scene.neural={ levelz = 2 }"], "unknown config key scene.neural.levelz"),
}


@pytest.mark.parametrize("case", sorted(SETUP))
def test_setting_checked_against_the_scene(case, tmp_path, monkeypatch):
    kind, overrides, fragment = SETUP[case]
    from rvs_mi.optimize import problem

    def no_rendering(config):
        raise AssertionError("references rendered before the settings were checked")
    monkeypatch.setattr(problem, "_render_references", no_rendering)
    config = load_config(_config(tmp_path, kind), overrides)
    with pytest.raises(UserError) as info:
        setup_problem(config)
    assert fragment in _one_line(str(info.value))


# --------------------------------------------------------------------------- datasets
def _png(path, width, height):
    data = np.full((height, width, 4), 0.5, dtype=np.float32)
    mi.Bitmap(data, pixel_format=mi.Bitmap.PixelFormat.RGBA).convert(
        mi.Bitmap.PixelFormat.RGBA, mi.Struct.Type.UInt8, srgb_gamma=True).write(str(path))


POSE = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0], [0.0, 0.0, 0.0, 1.0]]


def _dataset(tmp_path, edit=None, sizes=((4, 4),)):
    folder = tmp_path / "ds"
    (folder / "train").mkdir(parents=True)
    frames = []
    for i, (w, h) in enumerate(sizes):
        _png(folder / "train" / f"r_{i}.png", w, h)
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": [row[:] for row in POSE]})
    meta = {"camera_angle_x": 0.7, "frames": frames}
    if edit:
        edit(meta)
    (folder / "transforms_train.json").write_text(json.dumps(meta))
    return str(folder)


def _set_pose(value):
    def edit(meta):
        meta["frames"][0]["transform_matrix"] = value
    return edit


def _set(key, value):
    def edit(meta):
        meta[key] = value
    return edit


MIRROR = [[-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
SINGULAR = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0], [0.0, 0.0, 0.0, 1.0]]

# (edit of transforms_train.json, load_dataset keywords, image sizes, fragment)
DATASET = {
    "zero transform_matrix": (_set_pose([[0.0] * 4] * 4), {}, ((4, 4),), "frames[0].transform_matrix must have last row"),
    "singular transform_matrix": (_set_pose(SINGULAR), {}, ((4, 4),), "frames[0].transform_matrix is not a camera pose"),
    "mirrored transform_matrix": (_set_pose(MIRROR), {}, ((4, 4),), "frames[0].transform_matrix is not a camera pose"),
    "nan transform_matrix": (_set_pose([[float("nan")] * 4] * 4), {}, ((4, 4),), "has non-finite entries"),
    "3x4 transform_matrix": (_set_pose(POSE[:3]), {}, ((4, 4),), "must be 4x4"),
    "string transform_matrix": (_set_pose("abc"), {}, ((4, 4),), "frames[0].transform_matrix must be"),
    "camera_angle_x 0": (_set("camera_angle_x", 0), {}, ((4, 4),), "camera_angle_x must be"),
    "camera_angle_x negative": (_set("camera_angle_x", -1.0), {}, ((4, 4),), "camera_angle_x must be"),
    "camera_angle_x inf": (_set("camera_angle_x", float("inf")), {}, ((4, 4),), "camera_angle_x must be"),
    "camera_angle_x string": (_set("camera_angle_x", "0.7"), {}, ((4, 4),), "camera_angle_x must be"),
    "frames not a list": (_set("frames", {"a": 1}), {}, ((4, 4),), "frames must be a list"),
    "frames empty": (_set("frames", []), {}, ((4, 4),), "has no frames"),
    "frame not an object": (_set("frames", [3]), {}, ((4, 4),), "frames[0] must be an object"),
    "frame without file_path": (lambda m: m["frames"][0].pop("file_path"), {}, ((4, 4),), "is missing 'file_path'"),
    "unsupported intrinsics": (_set("fl_x", 500.0), {}, ((4, 4),), "unsupported field 'fl_x'"),
    "background length": (None, {"background": (0.0, 0.0)}, ((4, 4),), "background must be 3 finite numbers"),
    "background nan": (None, {"background": (0.0, float("nan"), 0.0)}, ((4, 4),), "background must be 3"),
    "aspect not whole at res": (None, {"res": 4}, ((5, 3),), "choose res so that res*3/5 is a whole number"),
    "mixed image sizes": (None, {}, ((4, 4), (8, 4)), "a split's images must share one size"),
}


@pytest.mark.parametrize("case", sorted(DATASET))
def test_dataset_field_refused(case, tmp_path):
    edit, kwargs, sizes, fragment = DATASET[case]
    folder = _dataset(tmp_path, edit, sizes)
    with pytest.raises(UserError) as info:
        load_dataset(folder, "train", **kwargs)
    assert fragment in _one_line(str(info.value))


@pytest.mark.parametrize("res, size", [(None, (8, 4)), (4, (4, 2)), (16, (16, 8))])
def test_non_square_dataset_keeps_its_aspect_ratio(tmp_path, res, size):
    split = load_dataset(_dataset(tmp_path, sizes=((8, 4),)), "train", res=res)
    w, h = size
    assert split.images[0].shape == (h, w, 3)
    film = split.sensors[0].film()
    assert tuple(film.size()) == (w, h)
    params = mi.traverse(split.sensors[0])
    assert abs(float(params["x_fov"][0]) - np.degrees(0.7)) < 1e-4      # camera_angle_x is horizontal


# --------------------------------------------------------------------------- plugin properties
VOLUME_DIR = os.path.join(os.path.dirname(scenes.path("volume_fit.xml")), "volume")


def _volume_xml(kind, extra):
    return (f'<scene version="3.0.0"><integrator type="{kind}">{extra}'
            f'<volume type="gridvolume" name="density"><string name="filename" '
            f'value="{VOLUME_DIR}/density_const4.vol"/></volume>'
            f'<volume type="gridvolume" name="radiance"><string name="filename" '
            f'value="{VOLUME_DIR}/radiance_const4.vol"/></volume></integrator></scene>')


def _sdf_xml(extra, shape="sphere"):
    return (f'<scene version="3.0.0"><integrator type="sdf_reparam">'
            f'<string name="sdf_shape" value="{shape}"/>{extra}</integrator></scene>')


PLUGIN = {
    "jitter string": (_volume_xml("rvs", '<string name="jitter" value="no"/>'),
                      "rvs: jitter must be a boolean (true or false) (got string 'no')"),
    "stratified string": (_volume_xml("rvs", '<string name="stratified" value="0"/>'),
                          "rvs: stratified must be a boolean"),
    "jitter integer": (_volume_xml("volquad", '<integer name="jitter" value="0"/>'), "volquad: jitter must be a boolean"),
    "knots fractional": (_volume_xml("rvs", '<float name="knots" value="2.9"/>'),
                         "rvs: knots must be an integer (got float 2.9)"),
    "samples string": (_volume_xml("rvs", '<string name="samples" value="many"/>'), "rvs: samples must be an integer"),
    "fine_samples fractional": (_volume_xml("rvs_hier", '<float name="fine_samples" value="8.5"/>'),
                                "rvs_hier: fine_samples must be an integer"),
    "activation not a string": (_volume_xml("rvs", '<integer name="density_activation" value="1"/>'),
                                "rvs: density_activation must be a string"),
    "max_depth ignored": (_volume_xml("rvs", '<integer name="max_depth" value="3"/>'),
                          "rvs: max_depth has no effect on this integrator"),
    "hide_emitters ignored": (_sdf_xml('<boolean name="hide_emitters" value="true"/>'),
                              "sdf_reparam: hide_emitters has no effect"),
    "unknown property": (_volume_xml("rvs", '<integer name="foo" value="3"/>'), 'unreferenced property'),
    "samples on volquad": (_volume_xml("volquad", '<integer name="samples" value="3"/>'), 'unreferenced property'),
    "top_k fractional": (_sdf_xml('<float name="top_k" value="2.9"/>'), "sdf_reparam: top_k must be an integer"),
    "gamma not a number": (_sdf_xml('<string name="gamma" value="abc"/>'),
                           "sdf_reparam: gamma must be a finite number (got string 'abc')"),
    "gamma inf": (_sdf_xml('<float name="gamma" value="inf"/>'), "sdf_reparam: gamma must be a finite number"),
    "lambda_d nan string": (_sdf_xml('<string name="lambda_d" value="nan"/>'), "sdf_reparam: lambda_d must be"),
    "max_steps fractional": (_sdf_xml('<float name="max_steps" value="10.5"/>'), "sdf_reparam: max_steps must be an"),
    "shading not a string": (_sdf_xml('<float name="shading" value="1"/>'), "sdf_reparam: shading must be a string"),
    "hit_epsilon zero": (_sdf_xml('<float name="hit_epsilon" value="0"/>'),
                         "hit_epsilon must be in (0, 0.1] (got 0.0)"),
    "sdf_spline on a shape": (_sdf_xml('<string name="sdf_spline" value="smoothing"/>'),
                              "sdf_reparam: sdf_spline applies to a grid SDF"),
    "sdf_radius not a number": (_sdf_xml('<string name="sdf_radius" value="big"/>'), "sdf_reparam: sdf_radius must be"),
    "sdf_radius nan": (_sdf_xml('<float name="sdf_radius" value="nan"/>'), "sdf_reparam: sdf_radius must be"),
    "sdf_center text": (_sdf_xml('<string name="sdf_center" value="a b c"/>'), "sdf_reparam: sdf_center must be three"),
    "minor radius on a sphere": (_sdf_xml('<float name="sdf_minor_radius" value="0.1"/>'),
                                 "sdf_minor_radius does not apply to sdf_shape 'sphere'"),
    "half extents on a torus": (_sdf_xml('<float name="sdf_half_extents" value="0.1"/>', "torus"),
                                "sdf_half_extents does not apply to sdf_shape 'torus'"),
    "radius without shape": ('<scene version="3.0.0"><integrator type="sdf_reparam">'
                             '<float name="sdf_radius" value="0.5"/></integrator></scene>',
                             "sdf_radius needs sdf_shape"),
    "albedo text": (_sdf_xml('<string name="albedo" value="red"/>'), "sdf_reparam: albedo must be three"),
}


@pytest.mark.parametrize("case", sorted(PLUGIN))
def test_plugin_property_refused(case, tmp_path):
    xml, fragment = PLUGIN[case]
    path = tmp_path / "scene.xml"
    path.write_text(xml)
    with pytest.raises(UserError) as info:
        load_scene(str(path))
    line = _one_line(str(info.value))
    assert fragment in line and "Traceback" not in line


@pytest.mark.parametrize("extra, attribute, value", [
    ('<string name="jitter" value="false"/>', "jitter", False),
    ('<string name="jitter" value="true"/>', "jitter", True),
    ('<boolean name="jitter" value="false"/>', "jitter", False),
    ('<string name="stratified" value="false"/>', "stratified", False),
    ('<float name="knots" value="64"/>', "knots", 64),
    ('<string name="samples" value="16"/>', "samples", 16),
])
def test_plugin_property_honoured(tmp_path, extra, attribute, value):
    path = tmp_path / "scene.xml"
    path.write_text(_volume_xml("rvs", extra))
    got = getattr(load_scene(str(path)).integrator(), attribute)
    assert got == value and type(got) is type(value)


# --------------------------------------------------------------------------- command line
def _file(t):
    path = t / "a_file"
    path.write_text("x")
    return str(path)


def _cbox():
    return scenes.path("cbox.xml")


def _bad_jitter_xml(t):
    path = t / "jitter.xml"
    path.write_text(_volume_xml("rvs", '<string name="jitter" value="maybe"/>'))
    return str(path)


def _optimize_config(t):
    return _config(t)


DATASET_ARGS = ["--views", "1", "--res", "4", "--spp", "1"]

# (argv builder, fragment of the one stderr line)
CLI = {
    "dataset radius 0": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--radius", "0", "-o", str(t / "d")],
                         "--radius must be a finite number > 0"),
    "dataset radius nan": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--radius", "nan", "-o", str(t / "d")],
                           "--radius must be a finite number > 0"),
    "dataset radius inf": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--radius", "inf", "-o", str(t / "d")],
                           "--radius must be a finite number > 0"),
    "dataset radius negative": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--radius=-2", "-o", str(t / "d")],
                                "--radius must be a finite number > 0"),
    "dataset fov 0": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--fov", "0", "-o", str(t / "d")],
                      "--fov must be in (0, 180)"),
    "dataset res 0": (lambda t: ["dataset", _cbox(), "--views", "1", "--res", "0", "-o", str(t / "d")],
                      "--res must be >= 1"),
    "dataset seed negative": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "--seed=-1", "-o", str(t / "d")],
                              "argument --seed: seed must be in [0, 4294967295]"),
    "dataset onto a file": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "-o", _file(t)],
                            "exists and is not a folder"),
    "dataset under a file": (lambda t: ["dataset", _cbox(), *DATASET_ARGS, "-o", os.path.join(_file(t), "sub")],
                             "which is not a folder"),
    "render seed negative": (lambda t: ["render", _cbox(), "--seed=-1", "-o", str(t / "x.exr")],
                             "argument --seed: seed must be in"),
    "render seed text": (lambda t: ["render", _cbox(), "--seed", "one", "-o", str(t / "x.exr")],
                         "argument --seed: expected an integer seed"),
    "render film width 0": (lambda t: ["render", _cbox(), "-D", "res=0", "-o", str(t / "x.exr")],
                            "film width must be >= 1"),
    "render onto a folder": (lambda t: ["render", _cbox(), "-o", str(t)], "output path is a directory"),
    "render spp -1": (lambda t: ["render", _cbox(), "--spp=-1", "-o", str(t / "x.exr")], "spp must be >= 1"),
    "render plugin boolean": (lambda t: ["render", _bad_jitter_xml(t), "-o", str(t / "x.exr")],
                              "rvs: jitter must be a boolean"),
    "fdcheck onto a file": (lambda t: ["fdcheck", _cbox(), "--param", "red.reflectance.value", "-o", _file(t)],
                            "exists and is not a folder"),
    "fdcheck direction seed negative": (lambda t: ["fdcheck", _cbox(), "--param", "x", "--direction-seed=-5"],
                                        "argument --direction-seed: seed must be in"),
    "sdfgrad onto a file": (lambda t: ["sdfgrad", "-o", _file(t)], "exists and is not a folder"),
    "sdfgrad seed 0": (lambda t: ["sdfgrad", "--seed", "0", "-o", str(t / "s")], "--seed must be >= 1"),
    "study1d seed negative": (lambda t: ["study1d", "--seed=-1", "-o", str(t / "s")], "--seed must be >= 0"),
    "study1d seed 2^32": (lambda t: ["study1d", "--seed=4294967296", "-o", str(t / "s")], "--seed must be <= 4294967295"),
    "demo onto a file": (lambda t: ["demo", "-o", _file(t)], "exists and is not a folder"),
    "optimize lr_final < 0": (lambda t: ["optimize", _optimize_config(t), "-o", str(t / "o"), "--set",
                                         'optimize.lr_schedule="cosine"', "--set", "optimize.lr_final=-1"],
                              "optimize.lr_final must be >= 0"),
    "optimize onto a file": (lambda t: ["optimize", _optimize_config(t), "-o", _file(t)],
                             "exists and is not a folder"),
    "optimize under a file": (lambda t: ["optimize", _optimize_config(t), "-o", os.path.join(_file(t), "sub")],
                              "which is not a folder"),
    "optimize fov 200": (lambda t: ["optimize", _optimize_config(t), "-o", str(t / "o"),
                                    "--set", "references.fov=200"], "references.fov must be < 180"),
}


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_refuses_with_one_line_and_exit_2(case, tmp_path, capsys):
    make_args, fragment = CLI[case]
    try:
        rc = cli.main(make_args(tmp_path))
    except SystemExit as exc:         # argparse errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    line = _one_line(err)
    assert fragment in line and "Traceback" not in err
    assert not (tmp_path / "d").exists() and not (tmp_path / "x.exr").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
@pytest.mark.parametrize("command", ["render", "dataset"])
def test_cli_refuses_a_read_only_folder(tmp_path, capsys, command):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        out = str(folder / ("x.exr" if command == "render" else "d"))
        argv = ["render", _cbox(), "-o", out] if command == "render" else \
            ["dataset", _cbox(), *DATASET_ARGS, "-o", out]
        assert cli.main(argv) == 2
        assert "not writable" in _one_line(capsys.readouterr().err)
    finally:
        folder.chmod(0o700)


def count_cases() -> int:
    """Bad inputs this file tries (refusals and honoured values)."""
    return len(CONFIG) + len(SETUP) + len(DATASET) + 3 + len(PLUGIN) + 6 + len(CLI) + 2
