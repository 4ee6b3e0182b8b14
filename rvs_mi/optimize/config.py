"""``rvs-mi optimize`` configuration: TOML, validated against one schema.

Every key has a type and a default; unknown keys are reported with the closest
valid ones, wrong types with the expected one. ``--set section.key=value``
overrides (the value parsed as TOML, or taken as a string).
"""
from __future__ import annotations

import copy
import difflib
import math
import os
import tomllib

from ..errors import UserError

REQUIRED = object()

# section -> key -> (type(s), default, help)
SCHEMA: dict[str, dict[str, tuple]] = {
    "scene": {
        "file": (str, REQUIRED, "Mitsuba XML scene to optimize (its integrator renders)"),
        "defines": (dict, {}, "substitutions for $key in the XML"),
        "neural": (dict, {}, "volume integrators: replace the density/radiance grids by neural "
                             "fields (rvs_mi.volume.neural options; {} = grids)"),
        "neural_sdf": (dict, {}, "SDF integrators: replace the SDF by a neural SDF "
                                 "(rvs_mi.sdf.neural options; {} = keep the scene's SDF)"),
    },
    "references": {
        "dataset": (str, "", "NeRF-synthetic folder (transforms_train.json, ...)"),
        "scene": (str, "", "reference scene rendered on a camera rig instead of a dataset"),
        "defines": (dict, {}, "substitutions for the reference scene"),
        "views": (int, 8, "training views rendered from the reference scene"),
        "test_views": (int, 2, "held-out views rendered from the reference scene"),
        "res": (int, 64, "image resolution (datasets are resized to it)"),
        "spp": (int, 256, "samples per pixel of rendered references"),
        "rig": (str, "sphere", "camera rig: sphere | hemisphere | turntable"),
        "fov": (float, 40.0, "horizontal field of view (degrees) of rendered references"),
        "radius": (float, 0.0, "camera distance (0: frame the reference scene's bounding box)"),
        "background": (list, [0.0, 0.0, 0.0], "colour behind transparent dataset pixels"),
        "max_views": (int, 0, "use at most this many dataset views (0: all)"),
        "seed": (int, 0, "seed of the camera rig"),
    },
    "optimize": {
        "params": (list, REQUIRED, "mi.traverse keys or regular expressions to optimize"),
        "steps": (int, 100, "optimization steps"),
        "spp": (int, 4, "samples per pixel of the primal render"),
        "spp_grad": (int, 0, "samples per pixel of the gradient pass (0: same as spp)"),
        "lr": (float, 0.02, "Adam learning rate"),
        "lr_scale": (dict, {}, "per-parameter learning-rate factors: {regex = factor}"),
        "lr_schedule": (str, "constant", "constant | cosine | exponential"),
        "lr_final": (float, 0.1, "final learning rate as a fraction of lr (cosine/exponential)"),
        "loss": (str, "l1", "l1 | l2 | huber"),
        "huber_delta": (float, 0.1, "Huber loss threshold"),
        "multiscale": (int, 1, "levels of the image pyramid in the loss (1: off; full images only)"),
        "clamp": (dict, {}, "value ranges applied after each step: {regex = [lo, hi]}"),
        "seed": (int, 0, "seed of rendering, view choice and pixel sampling"),
        "truth": (dict, {}, "true parameter values {key = value} to log parameter error"),
    },
    "sampler": {
        "name": (str, "full", "full | uniform | adaptive"),
        "budget": (float, 0.1, "pixel samples per step: a fraction of the image (<=1) or a count"),
        "beta": (float, 0.2, "uniform mixing weight of the adaptive sampler, in (0, 1]"),
        "rebuild_every": (int, 10, "steps between rebuilds of the adaptive distribution"),
        "tile": (int, 4, "tile size of the adaptive statistics in pixels"),
        "statistic": (str, "residual", "adaptive statistic: residual | gradient (see rvs_mi.sampling)"),
        "view_choice": (str, "uniform", "uniform | adaptive"),
    },
    "upsample": {
        "initial_resolution": (int, 0, "resample the grids to this resolution before step 0 (0: keep)"),
        "at_steps": (list, [], "steps at which grids double their resolution"),
        "params": (list, [], "keys/regexes of the grids to upsample (default: optimized tensors)"),
    },
    "regularizers": {
        "tv": (float, 0.0, "total-variation weight on 3-D grid parameters"),
        "laplacian": (float, 0.0, "Laplacian (smoothness) weight on 3-D grid parameters"),
        "params": (list, [], "keys/regexes the regularizers apply to (default: all 3-D grids)"),
        "eikonal": (float, 0.0, "eikonal weight mean(|grad f| - 1)^2 for a neural SDF"),
        "eikonal_points": (int, 1024, "random points per step of the eikonal term"),
        "redistance_every": (int, 0, "redistance SDF grids every N steps (0: never)"),
        "sdf_params": (list, [], "keys/regexes of SDF grids to redistance"),
    },
    "output": {
        "dir": (str, "out/optimize", "output folder (overridden by -o)"),
        "checkpoint_every": (int, 25, "steps between checkpoints (0: only at the end)"),
        "snapshot_every": (int, 0, "steps between image snapshots (0: none)"),
        "eval_spp": (int, 64, "samples per pixel of held-out evaluation renders"),
    },
}

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list",
               dict: "a table", bool: "true/false"}


def _closest(word, options):
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)
    return f" (closest valid: {', '.join(close)})" if close else f" (valid: {', '.join(options)})"


def _check_type(where, value, kind):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise UserError(f"config {where}: expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}")
    return value


def validate(raw: dict, base_dir: str = ".") -> dict:
    """Fill defaults, check keys and types; resolve file paths relative to ``base_dir``."""
    config = {}
    for section in raw:
        if section not in SCHEMA:
            raise UserError(f"unknown config section [{section}]{_closest(section, SCHEMA)}")
        if not isinstance(raw[section], dict):
            raise UserError(f"config [{section}] must be a table")
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        out = {}
        for key in given:
            if key not in keys:
                raise UserError(f"unknown config key {section}.{key}{_closest(key, keys)}")
        for key, (kind, default, _) in keys.items():
            if key in given:
                out[key] = _check_type(f"{section}.{key}", given[key], kind)
            elif default is REQUIRED:
                raise UserError(f"config is missing {section}.{key}")
            else:
                out[key] = copy.deepcopy(default)
        config[section] = out
    _check_values(config)
    for section, key in (("scene", "file"), ("references", "dataset"), ("references", "scene")):
        value = config[section][key]
        if value and not os.path.isabs(value):
            config[section][key] = os.path.normpath(os.path.join(base_dir, value))
    return config


def _check_values(c: dict) -> None:
    opt, ref, smp = c["optimize"], c["references"], c["sampler"]
    if bool(ref["dataset"]) == bool(ref["scene"]):
        raise UserError("config [references] needs exactly one of dataset = FOLDER or scene = FILE")
    if not opt["params"] or not all(isinstance(p, str) for p in opt["params"]):
        raise UserError("config optimize.params must be a non-empty list of key strings")
    for name, value in (("optimize.steps", opt["steps"]), ("optimize.spp", opt["spp"]),
                        ("references.res", ref["res"]), ("references.spp", ref["spp"]),
                        ("references.views", ref["views"]), ("optimize.multiscale", opt["multiscale"]),
                        ("output.eval_spp", c["output"]["eval_spp"])):
        if value < 1:
            raise UserError(f"config {name} must be >= 1 (got {value})")
    if not (opt["lr"] > 0 and math.isfinite(opt["lr"])):
        raise UserError(f"config optimize.lr must be > 0 (got {opt['lr']})")
    for key, allowed in (("loss", ("l1", "l2", "huber")), ("lr_schedule", ("constant", "cosine", "exponential"))):
        if opt[key] not in allowed:
            raise UserError(f"config optimize.{key} = {opt[key]!r}: choose one of {', '.join(allowed)}")
    if smp["name"] not in ("full", "uniform", "adaptive"):
        raise UserError(f"config sampler.name = {smp['name']!r}: choose one of full, uniform, adaptive")
    for key, rng in opt["clamp"].items():
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng)):
            raise UserError(f"config optimize.clamp.{key} must be [lo, hi]")


def load_config(path: str, overrides=()) -> dict:
    """Read, override (``section.key=value``) and validate a TOML config."""
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"cannot parse {path}: {exc}") from None
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, os.path.dirname(os.path.abspath(path)))


def apply_override(raw: dict, item: str) -> None:
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise UserError(f"malformed --set {item!r}: expected section.key=value")
    dotted, text = item.split("=", 1)
    section, key = dotted.split(".", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    raw.setdefault(section, {})[key] = value
