"""rvs-mi turntable: render a scene from cameras circling its bounding-box centre.

Frame k looks at the centre of the scene's bounds from azimuth 2πk/frames
(frame 0 on the +z side, y up) at ``--elevation`` degrees, with the fov (x axis)
of the scene's own perspective sensor, a square ``--res`` film and a box filter.
The bounds are the scene's bounding box joined with the boxes of a volume
integrator's fields (a volume scene has no shapes, so its own bounding box is
empty). The default ``--radius`` frames the bounding sphere of those bounds
(``rvs_mi.optimize.dataset.framing``). Frames are 8-bit sRGB PNGs
``frame_000.png``, … rendered by the scene's integrator with seed ``--seed``.
"""
from __future__ import annotations

import math
import os
import types

import numpy as np

from . import add_scene_arguments

NAME = "turntable"
HELP = "render frames of a scene from cameras circling it (8-bit sRGB PNGs)"


def add_arguments(parser) -> None:
    add_scene_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--frames", type=int, default=36, help="number of frames (default 36)")
    parser.add_argument("--res", type=int, default=256, help="image width and height (default 256)")
    parser.add_argument("--spp", type=int, default=64, help="samples per pixel (default 64)")
    parser.add_argument("--elevation", type=float, default=20.0,
                        help="camera elevation in degrees, in (-90, 90) (default 20)")
    parser.add_argument("--radius", type=float, default=None,
                        help="camera distance from the centre (default: frames the scene's bounds)")


def check_arguments(args) -> None:
    """Refuse (``UserError``, one line) any flag that cannot be used as given."""
    from ..errors import UserError
    from ..scene import check_output_dir
    check_output_dir(args.output)
    for name in ("frames", "res", "spp"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1 (got {getattr(args, name)})")
    if not (math.isfinite(args.elevation) and -90.0 < args.elevation < 90.0):
        raise UserError(f"--elevation must be in (-90, 90) degrees (got {args.elevation})")
    if args.radius is not None and not (math.isfinite(args.radius) and args.radius > 0):
        raise UserError(f"--radius must be a finite number > 0 (got {args.radius})")


def scene_bounds(scene):
    """``mi.BoundingBox3f`` of the scene's shapes and of its volume integrator's field boxes."""
    import mitsuba as mi
    box = mi.ScalarBoundingBox3f()
    bbox = scene.bbox()
    if bbox.valid():
        box.expand(mi.ScalarBoundingBox3f(mi.ScalarPoint3f(*np.ravel(bbox.min)),
                                          mi.ScalarPoint3f(*np.ravel(bbox.max))))
    fields = getattr(scene.integrator(), "fields", None)
    for field in (fields() if fields else {}).values():
        to_local = getattr(field, "to_local", None)
        if to_local is None:
            continue
        to_world = np.linalg.inv(np.array(to_local.matrix, dtype=np.float64).reshape(4, 4))
        for corner in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T:
            box.expand(mi.ScalarPoint3f(*(to_world @ np.r_[corner, 1.0])[:3]))
    return box


def scene_fov(scene) -> float:
    """The x-axis fov (degrees) of the scene's first sensor, which must be perspective."""
    import mitsuba as mi

    from ..errors import UserError
    if not scene.sensors():
        raise UserError("turntable uses the fov of the scene's sensor, and the scene has none")
    sensor = scene.sensors()[0]
    if not str(sensor).startswith("PerspectiveCamera"):
        raise UserError(f"turntable uses the fov of the scene's sensor, which must be perspective "
                        f"(got {str(sensor).split('[')[0]})")
    return float(mi.traverse(sensor)["x_fov"][0])


def camera_positions(center, radius: float, frames: int, elevation_deg: float) -> np.ndarray:
    """``frames`` positions at ``radius`` from ``center``, azimuth 2πk/frames, y up."""
    azimuth = 2.0 * math.pi * np.arange(frames) / frames
    elev = math.radians(elevation_deg)
    dirs = np.stack([math.cos(elev) * np.sin(azimuth), np.full(frames, math.sin(elev)),
                     math.cos(elev) * np.cos(azimuth)], axis=1)
    return np.asarray(center, dtype=np.float64) + radius * dirs


def run(args) -> int:
    import drjit as dr
    import mitsuba as mi

    from ..imageio import write_image
    from ..optimize.cameras import look_at, make_sensor
    from ..optimize.dataset import framing
    from ..scene import load_scene, parse_defines

    check_arguments(args)
    defines = parse_defines(args.defines)
    scene = load_scene(args.scene, defines, args.variant)
    fov = scene_fov(scene)
    bounds = scene_bounds(scene)
    center, radius = framing(types.SimpleNamespace(bbox=lambda: bounds), fov)
    radius = args.radius if args.radius is not None else radius
    os.makedirs(args.output, exist_ok=True)
    for k, position in enumerate(camera_positions(center, radius, args.frames, args.elevation)):
        sensor = make_sensor(look_at(position, center), fov, args.res, spp=args.spp)
        with dr.suspend_grad():
            image = mi.render(scene, sensor=sensor, spp=args.spp, seed=args.seed)
        write_image(os.path.join(args.output, f"frame_{k:03d}.png"), image)
    print(f"turntable {args.scene}: {args.frames} frames, {args.res}x{args.res}, {args.spp} spp, "
          f"radius {radius:.4g} -> {args.output}")
    return 0
