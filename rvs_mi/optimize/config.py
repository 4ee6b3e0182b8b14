"""``rvs-mi optimize`` configuration: TOML read into typed sections.

The section dataclasses below are the one schema: each field's type, default,
help text and range. :func:`validate` fills defaults, reports unknown keys
with the closest valid ones and wrong types with the expected one, and
returns a :class:`Config`. ``--set section.key=value`` overrides a value
(parsed as TOML, or taken as a string).
"""
import copy
import dataclasses
import difflib
import os
import tomllib
from dataclasses import dataclass, field

from ..errors import UserError
from ..sampling.defaults import SAMPLER_DEFAULTS, SAMPLERS, STATISTICS, VIEW_CHOICES
from ..volume.fields import ACTIVATIONS, RADIANCE_ACTIVATIONS
from ..volume.scene import INTEGRATORS
from .config_rules import check_values, scalar
from .losses import DEFAULT_LOSS, HUBER_DELTA, LOSSES

REQUIRED = object()
SCHEDULES = ("constant", "cosine", "exponential")


SEED_MAX = 2**32 - 1


def key(default, help: str, *, min=None, max=None, above=None, below=None, choices=None, items=None,
        length=None):
    """A config field: default (``REQUIRED`` for none), help text and its checks: ``min``/``max``
    (inclusive) and ``above``/``below`` (exclusive) bounds, allowed values (``choices``), the
    type of a list's items (``items``) and a list's length (``length``, or a tuple of lengths). Numbers (``float``
    fields and ``float`` items) must be finite."""
    meta = {"help": help, "min": min, "max": max, "above": above, "below": below, "choices": choices,
            "items": items, "length": length}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SceneSection:
    file: str = key("", "Mitsuba XML scene to optimize (its integrator renders); empty with a "
                        "references.dataset: the volume scene described by [volume] is built")
    defines: dict = key({}, "substitutions for $key in the XML (strings, numbers or true/false)")
    neural: dict = key({}, "volume integrators: replace the density/radiance grids by neural "
                           "fields (rvs_mi.volume.attach_neural_fields options; {} = grids)")
    neural_sdf: dict = key({}, "SDF integrators: replace the SDF by a neural SDF "
                               "(rvs_mi.sdf.attach_neural_sdf options; {} = keep the scene's SDF)")


@dataclass
class ReferencesSection:
    dataset: str = key("", "NeRF-synthetic folder (transforms_train.json, ...)")
    scene: str = key("", "reference scene rendered on a camera rig instead of a dataset")
    mesh: str = key("", "reference mesh (.ply/.obj, its own coordinates) rendered on a camera rig with the "
                        "fit scene's emitters and the SDF's albedo (SDF integrators, diffuse shading)")
    defines: dict = key({}, "substitutions for the reference scene")
    views: int = key(8, "training views rendered from the reference scene", min=1)
    test_views: int = key(2, "held-out views rendered from the reference scene", min=0)
    res: int = key(0, "image width: dataset images are resized to it, keeping their aspect ratio (0: their "
                      "own size); rendered references are res x res (0: 64)", min=0)
    spp: int = key(256, "samples per pixel of rendered references", min=1)
    rig: str = key("sphere", "camera rig", choices=("sphere", "hemisphere", "turntable"))
    fov: float = key(40.0, "horizontal field of view (degrees) of rendered references", above=0.0, below=180.0)
    radius: float = key(0.0, "camera distance (0: frame the reference scene's bounding box)", min=0.0)
    background: list = key([], "sRGB colour behind transparent dataset pixels, for compositing the images "
                               "and for rendering ([]: white for RGBA images, else black)", items=float,
                            length=(0, 3))
    max_views: int = key(0, "use at most this many dataset views (0: all)", min=0)
    seed: int = key(0, "seed of the camera rig", min=0, max=SEED_MAX)


@dataclass
class VolumeSection:
    integrator: str = key("rvs", "integrator of the volume scene built for a dataset", choices=INTEGRATORS)
    options: dict = key({}, "its XML properties, e.g. {samples = 8, knots = 0} (0 knots: one per voxel)")
    resolution: int = key(16, "initial resolution of the density and radiance grids (a cube)", min=1)
    sh_degree: int = key(2, "radiance: 0 = RGB, 1 or 2 = spherical harmonics of that degree", min=0, max=2)
    bounds: list = key([], "box [xmin, ymin, zmin, xmax, ymax, zmax] ([]: from the cameras and the "
                           "images' alpha)", items=float)
    density_init: float = key(0.1, "initial density grid value (before density_activation)")
    radiance_init: float = key(0.0, "initial radiance before radiance_activation, in every direction")
    density_activation: str = key("relu", "density activation", choices=ACTIVATIONS)
    radiance_activation: str = key("sigmoid", "radiance activation (sigmoid keeps colours in (0, 1))",
                                   choices=RADIANCE_ACTIVATIONS)


@dataclass
class OptimizeSection:
    params: list = key([], "mi.traverse keys or regular expressions to optimize (required with "
                           "scene.file; a built volume scene: its grids)", items=str)
    steps: int = key(100, "optimization steps", min=1)
    spp: int = key(4, "samples per pixel of the primal render", min=1)
    spp_grad: int = key(0, "samples per pixel of the gradient pass (0: same as spp)", min=0)
    lr: float = key(0.02, "Adam learning rate", above=0.0)
    lr_scale: dict = key({}, "per-parameter learning-rate factors: {regex = factor}")
    lr_schedule: str = key("constant", "learning-rate schedule", choices=SCHEDULES)
    lr_final: float = key(0.1, "final learning rate as a fraction of lr (cosine/exponential)", min=0.0)
    loss: str = key(DEFAULT_LOSS, "image loss", choices=LOSSES)
    huber_delta: float = key(HUBER_DELTA, "Huber loss threshold (loss = \"huber\")", above=0.0)
    multiscale: int = key(1, "levels of the image pyramid in the loss (1: off; sampler \"full\" only)", min=1)
    clamp: dict = key({}, "value ranges applied after each step: {regex = [lo, hi]}")
    seed: int = key(0, "seed of rendering, view choice and pixel sampling", min=0, max=SEED_MAX)
    freeze: bool = key(True, "record the Dr.Jit work of a step once (dr.freeze) and replay it in later "
                             "steps; false traces every step")
    truth: dict = key({}, "true parameter values {key = value} to log parameter error")


@dataclass
class SamplerSection:
    name: str = key("full", "pixel sampler", choices=SAMPLERS)
    budget: float = key(SAMPLER_DEFAULTS["budget"],
                        "pixel samples per step: a fraction of the image (<=1) or a count", above=0.0)
    beta: float = key(SAMPLER_DEFAULTS["beta"], "uniform mixing weight of the adaptive sampler, in (0, 1]",
                      above=0.0, max=1.0)
    rebuild_every: int = key(SAMPLER_DEFAULTS["rebuild_every"],
                             "steps between rebuilds of the adaptive distribution", min=1)
    tile: int = key(SAMPLER_DEFAULTS["tile"], "tile size of the adaptive statistics in pixels", min=1)
    statistic: str = key(SAMPLER_DEFAULTS["statistic"], "adaptive statistic (see rvs_mi.sampling)",
                         choices=STATISTICS)
    view_choice: str = key(SAMPLER_DEFAULTS["view_choice"], "view of a step: uniform or adaptive (one view per "
                                                            "step), all (each sample draws its own view)",
                           choices=VIEW_CHOICES)


@dataclass
class UpsampleSection:
    initial_resolution: int = key(0, "resample the grids to this resolution before step 0 (0: keep)", min=0)
    at_steps: list = key([], "steps at which grids double their resolution", items=int)
    params: list = key([], "keys/regexes of the grids to upsample (default: optimized tensors)", items=str)


@dataclass
class RegularizersSection:
    tv: float = key(0.0, "total-variation weight on 3-D grid parameters", min=0.0)
    laplacian: float = key(0.0, "Laplacian (smoothness) weight on 3-D grid parameters", min=0.0)
    params: list = key([], "keys/regexes the regularizers apply to (default: all 3-D grids)", items=str)
    eikonal: float = key(0.0, "eikonal weight mean(|grad f| - 1)^2 for a neural SDF", min=0.0)
    eikonal_points: int = key(1024, "random points per step of the eikonal term", min=1)
    redistance_every: int = key(0, "redistance SDF grids every N steps (0: never)", min=0)
    sdf_params: list = key([], "keys/regexes of SDF grids to redistance", items=str)


@dataclass
class OutputSection:
    dir: str = key("out/optimize", "output folder (overridden by -o)")
    checkpoint_every: int = key(25, "steps between checkpoints (0: only at the end)", min=0)
    snapshot_every: int = key(0, "steps between image snapshots (0: none)", min=0)
    eval_spp: int = key(64, "samples per pixel of held-out evaluation renders", min=1)
    mesh_resolution: int = key(128, "lattice resolution of the SDF's zero-level-set mesh and of the "
                                    "volume IoU in the geometry metrics (references.mesh)", min=8)


@dataclass
class Config:
    scene: SceneSection
    references: ReferencesSection
    volume: VolumeSection
    optimize: OptimizeSection
    sampler: SamplerSection
    upsample: UpsampleSection
    regularizers: RegularizersSection
    output: OutputSection

    def to_dict(self) -> dict:
        """Plain nested dict (TOML/JSON-friendly), section -> key -> value."""
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}

#: section -> key -> (type, default, help): the schema as a table (``rvs-mi optimize --keys``).
SCHEMA = {name: {f.name: (f.type, REQUIRED if f.default is REQUIRED else
                          (f.default_factory() if f.default is dataclasses.MISSING else f.default),
                          f.metadata["help"]) for f in dataclasses.fields(cls)}
          for name, cls in SECTIONS.items()}

def _closest(word, options):
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)
    return f" (closest valid: {', '.join(close)})" if close else f" (valid: {', '.join(options)})"


def _check_field(where, value, f):
    meta = f.metadata
    value = scalar(where, value, f.type)
    if meta["items"] is not None:
        value = [scalar(f"{where}[{i}]", v, meta["items"]) for i, v in enumerate(value)]
    lengths = meta["length"] if isinstance(meta["length"], tuple) else (meta["length"],)
    if meta["length"] is not None and len(value) not in lengths:
        raise UserError(f"config {where} must have {' or '.join(map(str, lengths))} values (got {len(value)})")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise UserError(f"config {where} = {value!r}: choose one of {', '.join(meta['choices'])}")
    for bound, ok, rule in (("min", lambda v, b: v >= b, ">="), ("max", lambda v, b: v <= b, "<="),
                            ("above", lambda v, b: v > b, ">"), ("below", lambda v, b: v < b, "<")):
        b = meta[bound]
        if b is not None and not ok(value, b):
            raise UserError(f"config {where} must be {rule} {b} (got {value})")
    return value


def _section(name, cls, given):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in given:
        if k not in fields:
            raise UserError(f"unknown config key {name}.{k}{_closest(k, fields)}")
    values = {}
    for k, f in fields.items():
        if k in given:
            values[k] = _check_field(f"{name}.{k}", given[k], f)
        elif f.default is REQUIRED:
            raise UserError(f"config is missing {name}.{k}")
    return cls(**values)


def validate(raw: dict, base_dir: str = ".") -> Config:
    """Fill defaults, check keys, types and values; resolve file paths relative to ``base_dir``."""
    for name in raw:
        if name not in SECTIONS:
            raise UserError(f"unknown config section [{name}]{_closest(name, SECTIONS)}")
        if not isinstance(raw[name], dict):
            raise UserError(f"config [{name}] must be a table")
    config = Config(**{name: _section(name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()})
    check_values(config, {f"{name}.{k}" for name, section in raw.items() for k in section})
    for section, k in (("scene", "file"), ("references", "dataset"), ("references", "scene"),
                       ("references", "mesh")):
        value = getattr(getattr(config, section), k)
        if value and not os.path.isabs(value):
            setattr(getattr(config, section), k, os.path.normpath(os.path.join(base_dir, value)))
    return config


def load_config(path: str, overrides=()) -> Config:
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
    section, name = dotted.split(".", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    raw.setdefault(section, {})[name] = value
