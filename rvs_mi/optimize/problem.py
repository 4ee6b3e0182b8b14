"""Set-up of an optimization: the scene, the optimized keys and the reference images."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError
from .cameras import look_at, make_sensor, rig_positions, split_views
from .config_rules import check_reference_keys, defines_text
from .dataset import Split, framing, load_dataset


RENDERED_RES = 64          # side of rendered references when references.res is 0


@dataclass
class Problem:
    scene: object
    params: object                      # mi.SceneParameters of the optimized scene
    keys: list                          # optimized mi.traverse keys
    train: Split
    test: Split | None
    ref_train: list = field(default_factory=list)   # reference tensors (mi.TensorXf)
    flat_sensors: dict = field(default_factory=dict)  # flat sensors of sparse batches, by batch size
    stacked_refs: object = None         # the training references end to end (batches over all views)


def resolve_keys(params, patterns) -> list[str]:
    """Expand exact keys and regular expressions (full match) over ``mi.traverse`` keys."""
    keys = []
    all_keys = list(params.keys())
    for pattern in patterns:
        if pattern in all_keys:
            found = [pattern]
        else:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise UserError(f"bad parameter pattern {pattern!r}: {exc}") from None
            found = [k for k in all_keys if regex.fullmatch(k)]
        if not found:
            close = difflib.get_close_matches(pattern, all_keys, n=4, cutoff=0.3)
            raise UserError(f"parameter {pattern!r} is not in mi.traverse(scene); closest keys: "
                            + ", ".join(close or all_keys[:4]))
        for key in found:
            value = params[key]
            non_diff = params.flags(key) & mi.ParamFlags.NonDifferentiable.value
            if non_diff or not (dr.is_diff_v(value) and dr.is_float_v(value)):
                raise UserError(f"parameter {key!r} is not differentiable")
            if key not in keys:
                keys.append(key)
    return keys


def _matching(where, patterns, candidates, what) -> None:
    """Refuse a pattern of config ``where`` that matches none of ``candidates``."""
    for pattern in patterns:
        if not any(pattern == k or re.fullmatch(pattern, k) for k in candidates):
            shown = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "") or "none"
            raise UserError(f"config {where}: {pattern!r} matches no {what} (they are: {shown})")


def check_parameter_settings(config, params, keys) -> None:
    """Settings that name parameters must name ones the run has; settings that act on 3-D
    grids need one. Checked before any rendering."""
    opt, up, reg = config.optimize, config.upsample, config.regularizers
    _matching("optimize.lr_scale", list(opt.lr_scale), keys, "optimized parameter")
    _matching("optimize.clamp", list(opt.clamp), keys, "optimized parameter")
    grids = [k for k in keys if getattr(params[k], "ndim", 0) == 4]
    for where, patterns in (("upsample.params", up.params), ("regularizers.params", reg.params),
                            ("regularizers.sdf_params", reg.sdf_params)):
        _matching(where, patterns, grids, "optimized 3-D grid")
    for where, active in (("upsample", up.initial_resolution > 0 or bool(up.at_steps)),
                          ("regularizers.tv/laplacian", reg.tv > 0 or reg.laplacian > 0),
                          ("regularizers.redistance_every", reg.redistance_every > 0)):
        if active and not grids:
            raise UserError(f"config {where} acts on optimized 3-D grids (Z x Y x X x C tensors), "
                            f"and none of the optimized parameters is one: {', '.join(keys)}")
    all_keys = list(params.keys())
    for key, value in opt.truth.items():
        if key not in all_keys:
            close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.3)
            raise UserError(f"config optimize.truth: {key!r} is not a parameter of the scene"
                            + (f" (closest: {', '.join(close)})" if close else ""))
        size = int(np.array(params[key]).size)
        given = int(np.asarray(value, dtype=np.float64).size)
        if given not in (1, size):
            raise UserError(f"config optimize.truth.{key!r} has {given} values; {key} has {size} "
                            "(give 1 value for all, or one per entry)")


def _check_options(where, options, defaults) -> None:
    """Neural options: known names, each of its default's kind (integers integral, numbers finite)."""
    import math
    for k, v in options.items():
        if k not in defaults:
            raise UserError(f"unknown config key {where}.{k} (valid: {', '.join(defaults)})")
        d = defaults[k]
        if d is None:
            continue
        items = list(v) if isinstance(v, (list, tuple)) and isinstance(d, (list, tuple)) else [v]
        if isinstance(d, (list, tuple)) and len(items) != len(d):
            raise UserError(f"config {where}.{k} must be a list of {len(d)} numbers (got {v!r})")
        proto = d[0] if isinstance(d, (list, tuple)) else d
        for x in items:
            ok = not isinstance(x, bool) and (isinstance(x, int) if isinstance(proto, int)
                                                else isinstance(x, (int, float)) and math.isfinite(x))
            if not ok:
                kind = "an integer" if isinstance(proto, int) else "a finite number"
                raise UserError(f"config {where}.{k} must be {kind} (got {v!r})")
        if k == "seed" and v < 0:
            raise UserError(f"config {where}.seed must be >= 0 (got {v})")


def check_multiscale(config, image_shape) -> None:
    """``optimize.multiscale`` levels must fit the training images (each level halves them)."""
    levels = config.optimize.multiscale
    h, w = image_shape[:2]
    if levels > 1 and min(h, w) >> (levels - 1) < 1:
        most = min(h, w).bit_length()
        raise UserError(f"config optimize.multiscale = {levels}: {w}x{h} training images allow at most "
                        f"{most} levels")


def _render_references(config: dict, seed_offset: int = 0, scene=None):
    """Train/test splits rendered on a camera rig from ``scene`` (default: the reference scene)."""
    from ..scene import load_scene
    ref = config.references
    if scene is None:
        scene = load_scene(ref.scene, defines_text(ref.defines))
    center, radius = framing(scene, ref.fov)
    if ref.radius > 0:
        radius = ref.radius
    train_pos, test_pos = split_views(rig_positions(ref.rig, ref.views + ref.test_views, radius, center,
                                                    ref.seed), ref.test_views)
    splits = []
    for name, poses in (("train", train_pos), ("test", test_pos)):
        split = Split([], [], [], ref.fov, [])
        for i, pos in enumerate(poses):
            c2w = look_at(pos, center)
            sensor = make_sensor(c2w, ref.fov, ref.res or RENDERED_RES, spp=4)
            with dr.suspend_grad():
                image = mi.render(scene, sensor=sensor, spp=ref.spp, seed=10007 + i + 1000 * len(splits))
            split.sensors.append(sensor)
            split.images.append(np.array(image, dtype=np.float32)[..., :3])
            split.c2w.append(c2w)
            split.files.append(f"{name}:{i}")
        splits.append(split)
    return splits[0], (splits[1] if splits[1].sensors else None)


def dataset_background(config) -> list:
    """The sRGB background of a dataset: ``references.background``, else white for RGBA images
    and black for RGB ones."""
    from .dataset import has_alpha
    ref = config.references
    if ref.background:
        return list(ref.background)
    return [1.0, 1.0, 1.0] if has_alpha(ref.dataset) else [0.0, 0.0, 0.0]


def _load_splits(config):
    """(train, test, sRGB background) of the config's dataset."""
    ref = config.references
    background = dataset_background(config)
    kwargs = dict(res=ref.res or None, background=background, max_views=ref.max_views or None)
    train = load_dataset(ref.dataset, "train", **kwargs)
    test_file = os.path.join(ref.dataset, "transforms_test.json")
    test = load_dataset(ref.dataset, "test", **kwargs) if os.path.isfile(test_file) else None
    check_reference_keys(config)
    if "references.background" in getattr(config, "given", ()) and train.alphas is None:
        raise UserError("config references.background has no effect: the dataset's images have no alpha "
                        "(remove the key)")
    return train, test, background


def check_scene_background(scene, background, path: str) -> None:
    """The scene must render the dataset's background: its environment's radiance (zero
    without one) must be the linear value of the sRGB colour ``background``."""
    from .dataset import srgb_to_linear
    want = srgb_to_linear(background)
    env = scene.environment()
    got = np.zeros(3)
    if env is not None:
        si = dr.zeros(mi.SurfaceInteraction3f)
        values = []
        for d in np.vstack([np.eye(3), -np.eye(3)]):
            si.wi = mi.Vector3f(*(-d))
            values.append(np.array(env.eval(si)).reshape(-1)[:3])
        got = np.mean(values, axis=0)
        if np.ptp(values, axis=0).max() > 1e-4:
            got = None
    if got is None or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        shown = "varies with direction" if got is None else f"is {np.round(got, 4).tolist()}"
        raise UserError(f"the background of {path} {shown} (linear), but the dataset is composited over "
                        f"references.background = {list(background)} (sRGB; linear "
                        f"{np.round(want, 4).tolist()}): give the scene <emitter type=\"constant\"> of that "
                        "linear radiance, or set references.background")


def setup_problem(config: dict) -> Problem:
    """The scene, its optimized keys and the reference images. Every setting that names
    parameters is checked against the scene before any reference is rendered."""
    from ..scene import load_scene
    ref = config.references
    train = test = None
    if config.scene.file:
        scene = load_scene(config.scene.file, defines_text(config.scene.defines))
    else:
        from .volume_scene import build_volume_scene
        train, test, background = _load_splits(config)
        scene = build_volume_scene(config, train, background)
    if config.scene.neural:
        from ..volume.neural import DEFAULTS, attach_neural_fields
        _check_options("scene.neural", config.scene.neural, DEFAULTS)
        attach_neural_fields(scene.integrator(), **config.scene.neural)
    if config.scene.neural_sdf:
        from ..sdf.neural import DEFAULTS, attach_neural_sdf
        _check_options("scene.neural_sdf", config.scene.neural_sdf, DEFAULTS)
        attach_neural_sdf(scene.integrator(), **config.scene.neural_sdf)
    params = mi.traverse(scene)
    try:
        keys = resolve_keys(params, config.optimize.params)
    except UserError as exc:
        raise UserError(f"config optimize.params: {exc}") from None
    check_parameter_settings(config, params, keys)
    if ref.dataset and train is None:
        train, test, background = _load_splits(config)
        if train.alphas is not None:
            check_scene_background(scene, background, config.scene.file)
    elif not ref.dataset:
        check_multiscale(config, (ref.res or RENDERED_RES,) * 2)
        from .mesh_reference import mesh_reference_scene
        train, test = _render_references(config, scene=mesh_reference_scene(config, scene)
                                         if ref.mesh else None)
    check_multiscale(config, train.images[0].shape)
    refs = [mi.TensorXf(img) for img in train.images]
    return Problem(scene, params, keys, train, test, refs)
