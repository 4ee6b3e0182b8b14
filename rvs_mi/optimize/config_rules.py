"""Rules of an ``rvs-mi optimize`` config beyond one field's type and range.

Scalar type checks shared with :mod:`.config`, and the checks that involve
more than one key: keys that have no effect with the other settings (refused
rather than ignored), reference keys of the other kind of references, XML
substitutions, regular expressions, clamp ranges, ground truth and upsampling
steps.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .config import Config

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list",
               dict: "a table", bool: "true/false"}


def _type_error(where, kind, value):
    return UserError(f"config {where}: expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}")


def scalar(where, value, kind):
    """``value`` as ``kind`` (an int is a float where a number is expected; numbers finite)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind in (int, float) and isinstance(value, bool)) or not isinstance(value, kind):
        raise _type_error(where, kind, value)
    if kind is float and not math.isfinite(value):
        raise UserError(f"config {where} must be a finite number (got {value})")
    return value


#: Keys that only rendered references (a scene or a mesh) use, and keys that only a dataset uses.
SCENE_REFERENCE_KEYS = ("views", "test_views", "spp", "rig", "fov", "radius", "defines", "seed")
DATASET_REFERENCE_KEYS = ("background", "max_views")

#: [sampler] keys that only the adaptive pixel distribution or view choice reads.
ADAPTIVE_ONLY = ("beta", "rebuild_every", "statistic")

#: (key, the condition under which it has an effect, the condition in words): a key given
#: explicitly while its condition is false is refused rather than ignored.
_EFFECTIVE = (
    ("optimize.lr_final", lambda c: c.optimize.lr_schedule != "constant", "lr_schedule is cosine or exponential"),
    ("optimize.huber_delta", lambda c: c.optimize.loss == "huber", "loss = \"huber\""),
    ("upsample.params", lambda c: c.upsample.initial_resolution > 0 or c.upsample.at_steps,
     "upsample.initial_resolution or upsample.at_steps is set"),
    ("regularizers.params", lambda c: c.regularizers.tv > 0 or c.regularizers.laplacian > 0,
     "regularizers.tv or regularizers.laplacian is > 0"),
    ("regularizers.sdf_params", lambda c: c.regularizers.redistance_every > 0,
     "regularizers.redistance_every is > 0"),
    ("regularizers.eikonal_points", lambda c: c.regularizers.eikonal > 0, "regularizers.eikonal is > 0"),
    ("output.mesh_resolution", lambda c: bool(c.references.mesh), "references.mesh is set"),
    ("sampler.budget", lambda c: c.sampler.name != "full", 'sampler.name is "uniform" or "adaptive"'),
    ("sampler.tile", lambda c: c.sampler.name == "adaptive", 'sampler.name = "adaptive"'),
    *((f"sampler.{k}", lambda c: "adaptive" in (c.sampler.name, c.sampler.view_choice),
       'sampler.name or sampler.view_choice is "adaptive"') for k in ADAPTIVE_ONLY),
)


def check_reference_keys(c: Config) -> None:
    """Refuse [references] keys given explicitly that the kind of references in use ignores.
    (For a dataset this runs once the dataset has loaded, so that a missing or unreadable
    dataset is what gets reported first.)"""
    ref = c.references
    kind = "scene" if ref.scene else "mesh" if ref.mesh else "dataset"
    unused = {"scene": DATASET_REFERENCE_KEYS, "mesh": DATASET_REFERENCE_KEYS + ("defines",),
              "dataset": SCENE_REFERENCE_KEYS}[kind]
    for k in unused:
        if f"references.{k}" in getattr(c, "given", ()):
            applies = ("dataset" if k in DATASET_REFERENCE_KEYS else "scene" if k == "defines"
                       else "scene or mesh")
            raise UserError(f"config references.{k} applies only to a reference {applies}; this config "
                            f"uses a {kind} (remove the key)")


#: The parameters of a built volume scene (the integrator has id "volume").
BUILT_PARAMS = ["volume.density.data", "volume.radiance.data"]


def _check_scene(c: Config, given) -> None:
    """A scene file, or a volume scene built for a dataset from [volume] (not both)."""
    volume_keys = sorted(k for k in given if k.startswith("volume."))
    if c.scene.file:
        if volume_keys:
            raise UserError(f"config {volume_keys[0]} describes the volume scene built for a dataset; "
                            "this config gives scene.file (remove one)")
        if not c.optimize.params:
            raise UserError("config optimize.params must be a non-empty list of key strings (the keys "
                            "to optimize in scene.file)")
        return
    if not c.references.dataset:
        raise UserError("config is missing scene.file (a volume scene is built only for "
                        "references.dataset)")
    if "scene.defines" in given:
        raise UserError("config scene.defines substitutes $keys in scene.file, and there is none")
    for k, v in c.volume.options.items():
        if k in ("density", "radiance", "density_activation", "radiance_activation"):
            raise UserError(f"config volume.options.{k}: set it with the volume section's own keys")
        if isinstance(v, float) and not math.isfinite(v) or not isinstance(v, (str, int, float, bool)):
            raise UserError(f"config volume.options.{k}: expected a string, number or true/false (got {v!r})")
    bounds = c.volume.bounds
    if bounds and (len(bounds) != 6 or not all(bounds[i] < bounds[i + 3] for i in range(3))):
        raise UserError(f"config volume.bounds must be [xmin, ymin, zmin, xmax, ymax, zmax] with each "
                        f"min < max (got {bounds})")
    if not c.optimize.params:
        c.optimize.params = list(BUILT_PARAMS)


def defines_text(defines: dict) -> dict:
    """XML substitutions as strings: booleans as true/false, numbers as Python writes them."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in defines.items()}


def _check_defines(where, defines):
    for k, v in defines.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"config {where}.{k} must be a finite number (got {v})")
        if not isinstance(v, (str, int, float, bool)):
            raise UserError(f"config {where}.{k}: expected a string, number or true/false, "
                            f"got {type(v).__name__} {v!r}")


def _check_patterns(where, patterns):
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise UserError(f"config {where}: bad regular expression {p!r}: {exc}") from None


def _number(where, v):
    return scalar(where, v, float)


def _bound(where, v):
    """A clamp bound: a number, or -inf/inf for no bound on that side (never NaN)."""
    if isinstance(v, float) and math.isinf(v):
        return v
    return _number(where, v)


def check_values(c: Config, given=frozenset()) -> None:
    """Checks that involve more than one field's type and range."""
    opt, ref = c.optimize, c.references
    if [bool(ref.dataset), bool(ref.scene), bool(ref.mesh)].count(True) != 1:
        raise UserError("config [references] needs exactly one of dataset = FOLDER, scene = FILE or "
                        "mesh = FILE")
    c.given = frozenset(given)
    if ref.scene or ref.mesh:
        check_reference_keys(c)
    _check_scene(c, given)
    for k, when, words in _EFFECTIVE:
        if k in given and not when(c):
            raise UserError(f"config {k} has no effect unless {words} (remove it or set that)")
    _check_defines("scene.defines", c.scene.defines)
    _check_defines("references.defines", ref.defines)
    if not opt.params:
        raise UserError("config optimize.params must be a non-empty list of key strings")
    _check_patterns("optimize.params", opt.params)
    _check_patterns("optimize.lr_scale", list(opt.lr_scale))
    for k, factor in opt.lr_scale.items():
        if not _number(f"optimize.lr_scale.{k!r}", factor) > 0:
            raise UserError(f"config optimize.lr_scale.{k!r} must be > 0 (got {factor})")
    _check_patterns("optimize.clamp", list(opt.clamp))
    for k, rng in opt.clamp.items():
        if not (isinstance(rng, list) and len(rng) == 2):
            raise UserError(f"config optimize.clamp.{k!r} must be [lo, hi] (got {rng!r})")
        lo, hi = (_bound(f"optimize.clamp.{k!r}", v) for v in rng)
        if not lo <= hi:
            raise UserError(f"config optimize.clamp.{k!r} = [{lo}, {hi}]: lo must be <= hi")
        opt.clamp[k] = [lo, hi]
    for k, v in opt.truth.items():
        flat = v if isinstance(v, list) else [v]
        while flat and all(isinstance(x, list) for x in flat):
            flat = [y for x in flat for y in x]
        if not flat:
            raise UserError(f"config optimize.truth.{k!r} must be a number or a list of numbers (got {v!r})")
        for x in flat:
            _number(f"optimize.truth.{k!r}", x)
    if opt.multiscale > 1 and c.sampler.name != "full":
        raise UserError(f"config optimize.multiscale = {opt.multiscale} needs sampler.name = \"full\" "
                        f"(the {c.sampler.name} sampler renders pixel batches, not images)")
    budget = c.sampler.budget
    if budget > 1 and budget != int(budget):
        raise UserError(f"config sampler.budget = {budget}: a value > 1 is a pixel count and must be whole")
    up = c.upsample
    for i, s in enumerate(up.at_steps):
        if not 0 <= s < opt.steps:
            raise UserError(f"config upsample.at_steps[{i}] = {s} must be in [0, optimize.steps - 1 = "
                            f"{opt.steps - 1}]")
    if len(set(up.at_steps)) != len(up.at_steps):
        raise UserError(f"config upsample.at_steps has a step twice: {up.at_steps}")
    for where, patterns in (("upsample.params", up.params), ("regularizers.params", c.regularizers.params),
                            ("regularizers.sdf_params", c.regularizers.sdf_params)):
        _check_patterns(where, patterns)
