"""rvs-mi render: render a scene with rvs-mi's plugins registered."""
from __future__ import annotations

import time

from . import add_scene_arguments

NAME = "render"
HELP = "render a Mitsuba XML scene to EXR or PNG"


def add_arguments(parser) -> None:
    add_scene_arguments(parser)
    parser.add_argument("-o", "--output", default="render.exr", metavar="OUT.exr|OUT.png",
                        help="output image (default render.exr)")
    parser.add_argument("--spp", type=int, default=None, help="samples per pixel (default: the scene's)")


def run(args) -> int:
    import mitsuba as mi

    from ..imageio import write_image
    from ..scene import check_output_path, check_spp, load_scene, parse_defines

    defines = parse_defines(args.defines)
    spp = 0 if args.spp is None else check_spp(args.spp)
    check_output_path(args.output)
    if not args.output.lower().endswith((".exr", ".png", ".jpg", ".jpeg")):
        from ..errors import UserError
        raise UserError(f"unsupported output format for {args.output}: use .exr or .png")
    scene = load_scene(args.scene, defines, args.variant)
    sensor = scene.sensors()[0]
    start = time.perf_counter()
    image = mi.render(scene, seed=args.seed, spp=spp)
    image = image.numpy()
    elapsed = time.perf_counter() - start
    write_image(args.output, image)
    width, height = sensor.film().crop_size()
    used_spp = spp or sensor.sampler().sample_count()
    print(f"rendered {args.scene}: {width}x{height}, {used_spp} spp, {elapsed:.3f} s "
          f"({mi.variant()}) -> {args.output}")
    return 0
