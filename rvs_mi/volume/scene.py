"""Build volume scenes programmatically (tests, benchmarks, optimization and demos)."""
from __future__ import annotations

import mitsuba as mi
import numpy as np

from ..checks import integer, number, vector, view
from ..errors import UserError, one_line

INTEGRATORS = ("rvs", "rvs_hier", "volquad")


def _grid(value, name: str, channels: tuple[int, ...]):
    """numpy array / scalar / tuple / mi.VolumeGrid -> something gridvolume's 'grid' accepts."""
    if isinstance(value, mi.VolumeGrid):
        return value
    array = np.asarray(value, dtype=np.float32)
    if array.ndim <= 1:                          # constant: 1 value or a channel vector
        array = array.reshape(1, 1, 1, -1)
    elif array.ndim == 3 and 1 in channels:
        array = array[..., None]
    if array.ndim != 4:
        raise UserError(f"{name} grid must have shape (Z, Y, X[, C]); got {array.shape}")
    if array.shape[3] not in channels:
        raise UserError(f"{name} grid has {array.shape[3]} channels; expected "
                        + " or ".join(str(c) for c in channels))
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} grid contains non-finite values (NaN or inf)")
    return mi.VolumeGrid(np.ascontiguousarray(array))


def volume_scene_dict(density, radiance, integrator: str = "rvs", options: dict | None = None, *,
                      box_min=(-1.0, -1.0, -1.0), box_max=(1.0, 1.0, 1.0),
                      resolution=(32, 32), spp: int = 1, camera: str = "orthographic",
                      origin=(0.0, 0.0, 4.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0),
                      fov: float = 40.0, ortho_scale: float | None = None,
                      background=None, integrator_id: str = "volume",
                      extra: dict | None = None) -> dict:
    """A Mitsuba scene dict with one emission–absorption volume rendered by ``integrator``.

    - ``density``: array (Z, Y, X) or (Z, Y, X, 1), or a scalar (constant grid);
      ``radiance``: array (Z, Y, X, C) with C = 3 (RGB), 12 or 27 (SH degree
      1/2), or an RGB triple (constant). Both are ``gridvolume`` children placed
      in the box [``box_min``, ``box_max``] (the density's box is the volume's).
      Either may also be a ready ``mi.VolumeGrid`` or a plugin dict.
    - ``integrator``: ``rvs``, ``rvs_hier`` or ``volquad``; ``options`` its XML
      parameters (e.g. ``{"knots": 64, "samples": 8, "jitter": False}``). The
      integrator gets id ``integrator_id``, so the fields are
      ``mi.traverse(scene)[f"{integrator_id}.density.data"]`` and ``….radiance.data``.
    - ``camera``: ``orthographic`` (looking from ``origin`` to ``target``; the
      view spans ±``ortho_scale``, default: half the box's largest extent, so a
      head-on view of the box fills the image) or ``perspective`` (``fov`` degrees).
    - ``resolution`` (width, height), ``spp``: film size and samples per pixel
      (box pixel filter, RGB film).
    - ``background``: None (black) or an RGB triple for a constant environment
      light, which rays leaving the volume pick up times its transmittance.
    - ``extra``: more scene-dict entries (shapes, emitters) merged in.
    """

    if integrator not in INTEGRATORS:
        raise UserError(f"unknown volume integrator {integrator!r}; use one of: " + ", ".join(INTEGRATORS))
    lo, hi = vector("box_min", box_min), vector("box_max", box_max)
    if not np.all(hi > lo):
        raise UserError(f"box_max must exceed box_min in every axis (got {box_min}, {box_max})")
    box = mi.ScalarTransform4f().translate(lo.tolist()).scale((hi - lo).tolist())

    def field(value, name, channels):
        if isinstance(value, dict):
            return value
        return {"type": "gridvolume", "grid": _grid(value, name, channels), "to_world": box}

    integ = {"type": integrator, "id": integrator_id,
             "density": field(density, "density", (1,)),
             "radiance": field(radiance, "radiance", (3, 12, 27))}
    integ.update(options or {})

    if len(resolution) != 2:
        raise UserError(f"resolution must be (width, height) (got {resolution!r})")
    width, height = (integer("resolution width", resolution[0], 1),
                     integer("resolution height", resolution[1], 1))
    origin, target, up = view(origin, target, up)
    to_world = mi.ScalarTransform4f().look_at(origin=origin.tolist(), target=target.tolist(), up=up.tolist())
    if camera == "orthographic":
        scale = float(np.max(hi - lo)) / 2 if ortho_scale is None else \
            number("ortho_scale", ortho_scale, 0.0, lo_open=True)
        sensor = {"type": "orthographic", "to_world": to_world @ mi.ScalarTransform4f().scale([scale, scale, 1])}
    elif camera == "perspective":
        fov = number("fov", fov, 0.0, 180.0, lo_open=True)
        if fov >= 180.0:
            raise UserError(f"fov must be < 180 (got {fov:g})")
        sensor = {"type": "perspective", "fov": fov, "to_world": to_world}
    else:
        raise UserError(f"camera must be orthographic or perspective (got {camera!r})")
    sensor["film"] = {"type": "hdrfilm", "width": width, "height": height,
                      "pixel_format": "rgb", "rfilter": {"type": "box"}}
    sensor["sampler"] = {"type": "independent", "sample_count": integer("spp", spp, 1)}

    scene = {"type": "scene", "integrator": integ, "sensor": sensor}
    if background is not None:
        scene["environment"] = {"type": "constant",
                                "radiance": {"type": "rgb", "value": vector("background", background).tolist()}}
    scene.update(extra or {})
    return scene


def plugin_error_message(exc) -> str:
    """The one-line message of a ``UserError`` raised inside a Python plugin's constructor.

    Mitsuba's loader re-raises it as a RuntimeError whose text embeds the whole
    Python traceback; this digs out the last ``UserError: ...`` line (or
    returns the collapsed text when there is none).
    """
    import re
    found = re.findall(r"UserError: ([^\n]*)", str(exc))
    return found[-1].strip() if found else one_line(exc)


def load_volume_scene(*args, **kwargs):
    """``mi.load_dict(volume_scene_dict(...))`` with plugin errors turned into one-line ``UserError``."""
    from .. import init
    init(None if mi.variant() is None else mi.variant())
    scene_dict = volume_scene_dict(*args, **kwargs)
    try:
        return mi.load_dict(scene_dict)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot load volume scene: {plugin_error_message(exc)}") from None
