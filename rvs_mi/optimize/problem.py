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
from .dataset import Split, framing, load_dataset


@dataclass
class Problem:
    scene: object
    params: object                      # mi.SceneParameters of the optimized scene
    keys: list                          # optimized mi.traverse keys
    train: Split
    test: Split | None
    ref_train: list = field(default_factory=list)   # reference tensors (mi.TensorXf)


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


def _render_references(config: dict, seed_offset: int = 0):
    """Train/test splits rendered from the reference scene on a camera rig."""
    from ..scene import load_scene
    ref = config.references
    scene = load_scene(ref.scene, {k: str(v) for k, v in ref.defines.items()})
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
            sensor = make_sensor(c2w, ref.fov, ref.res, spp=4)
            with dr.suspend_grad():
                image = mi.render(scene, sensor=sensor, spp=ref.spp, seed=10007 + i + 1000 * len(splits))
            split.sensors.append(sensor)
            split.images.append(np.array(image, dtype=np.float32)[..., :3])
            split.c2w.append(c2w)
            split.files.append(f"{name}:{i}")
        splits.append(split)
    return splits[0], (splits[1] if splits[1].sensors else None)


def setup_problem(config: dict) -> Problem:
    from ..scene import load_scene
    scene = load_scene(config.scene.file, {k: str(v) for k, v in config.scene.defines.items()})
    if config.scene.neural:
        from ..volume.neural import attach_neural_fields
        attach_neural_fields(scene.integrator(), **config.scene.neural)
    if config.scene.neural_sdf:
        from ..sdf.neural import attach_neural_sdf
        attach_neural_sdf(scene.integrator(), **config.scene.neural_sdf)
    ref = config.references
    if ref.dataset:
        kwargs = dict(res=ref.res, background=ref.background, max_views=ref.max_views or None)
        train = load_dataset(ref.dataset, "train", **kwargs)
        test_file = os.path.join(ref.dataset, "transforms_test.json")
        test = load_dataset(ref.dataset, "test", **kwargs) if os.path.isfile(test_file) else None
    else:
        train, test = _render_references(config)
    params = mi.traverse(scene)
    keys = resolve_keys(params, config.optimize.params)
    refs = [mi.TensorXf(img) for img in train.images]
    return Problem(scene, params, keys, train, test, refs)
