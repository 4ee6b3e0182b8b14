"""rvs-mi dataset: render a multi-view dataset of a scene in the NeRF-synthetic layout."""
from __future__ import annotations

from . import add_scene_arguments

NAME = "dataset"
HELP = "render multi-view images of a Mitsuba scene (NeRF-synthetic layout)"


def add_arguments(parser) -> None:
    add_scene_arguments(parser)
    parser.add_argument("--views", type=int, required=True, help="number of training views")
    parser.add_argument("--res", type=int, required=True, help="image width = height in pixels")
    parser.add_argument("--test-views", type=int, default=0, help="number of held-out views (default 0)")
    parser.add_argument("--spp", type=int, default=64, help="path-tracer samples per pixel (default 64)")
    parser.add_argument("--rig", choices=["sphere", "hemisphere", "turntable"], default="sphere")
    parser.add_argument("--fov", type=float, default=40.0, help="horizontal field of view in degrees")
    parser.add_argument("--radius", type=float, default=None,
                        help="camera distance (default: frames the scene's bounding box)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")


def run(args) -> int:
    import math

    from tqdm import tqdm

    from ..errors import UserError
    from ..optimize.dataset import render_dataset
    from ..scene import check_output_dir, check_spp, load_scene, parse_defines

    defines = parse_defines(args.defines)
    for name in ("views", "res", "spp"):
        check_spp(getattr(args, name), f"--{name}")
    if args.test_views < 0:
        raise UserError(f"--test-views must be >= 0 (got {args.test_views})")
    if not 0 < args.fov < 180:
        raise UserError(f"--fov must be in (0, 180) degrees (got {args.fov})")
    if args.radius is not None and not (math.isfinite(args.radius) and args.radius > 0):
        raise UserError(f"--radius must be a finite number > 0 (got {args.radius})")
    check_output_dir(args.output)
    scene = load_scene(args.scene, defines, args.variant)
    bar = tqdm(total=args.views + args.test_views, desc="dataset", unit="view")
    summary = render_dataset(scene, args.output, args.views, args.res, args.test_views, args.spp,
                             args.rig, args.seed, args.fov, args.radius,
                             progress=lambda split, j: bar.update(1))
    bar.close()
    print(f"dataset: {summary['train']} train + {summary['test']} test views at "
          f"{args.res}x{args.res}, {args.spp} spp -> {args.output}")
    return 0
