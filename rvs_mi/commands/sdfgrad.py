"""rvs-mi sdfgrad: gradient images like Fig. 6 of Bangaru et al. 2022 (naive | ours | FD) for an SDF."""
from __future__ import annotations

NAME = "sdfgrad"
HELP = "write SDF gradient images: sdf_naive | sdf_reparam | finite differences (Bangaru et al. 2022, Fig. 6)"


def add_arguments(parser) -> None:
    from ..scene import seed_arg
    parser.add_argument("-o", "--output", default="sdfgrad", metavar="DIR",
                        help="output folder (default ./sdfgrad)")
    parser.add_argument("--scene", default=None, metavar="SCENE.xml",
                        help="scene with an sdf_reparam/sdf_naive integrator whose type is $integrator "
                             "(default: the shipped diffuse torus with a 3-D noise albedo)")
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="key=value",
                        help="substitute $key in the XML (repeatable)")
    parser.add_argument("--param", default="integrator.sdf.radius", metavar="KEY",
                        help="parameter to differentiate (default integrator.sdf.radius)")
    parser.add_argument("--res", type=int, default=64, help="image size (default 64)")
    parser.add_argument("--spp", type=int, default=64, help="spp of the AD renders (default 64)")
    parser.add_argument("--fd-spp", type=int, default=4096,
                        help="spp of the FD renders, stratified (default 4096)")
    parser.add_argument("--eps", type=float, default=5e-3, help="central FD step (default 5e-3)")
    parser.add_argument("--seed", type=seed_arg, default=1, help="random seed in [1, 2^32 - 1] (default 1)")


def run(args) -> int:
    import os

    import numpy as np

    from .. import init, scenes
    from ..errors import UserError
    from ..imageio import write_image, write_signed_strip
    from ..scene import check_output_dir, check_spp, load_scene, parse_defines
    from ..validate.fd import _direction, compare_gradients, fd_check

    check_spp(args.spp, "--spp")
    check_spp(args.fd_spp, "--fd-spp")
    if args.res < 2:
        raise UserError(f"--res must be >= 2 (got {args.res})")
    if not args.eps > 0:
        raise UserError(f"--eps must be > 0 (got {args.eps})")
    if args.seed < 1:
        raise UserError(f"--seed must be >= 1 (got {args.seed})")
    check_output_dir(args.output)
    defines = parse_defines(args.defines)
    os.makedirs(args.output, exist_ok=True)
    init()
    import drjit as dr
    import mitsuba as mi

    path = args.scene or scenes.path("sdf_torus.xml")
    if args.scene is None and "albedo_file" not in defines:
        from ..figures.noise import write_noise_albedo
        defines["albedo_file"] = write_noise_albedo(os.path.join(args.output, "albedo.vol"))
    defines = {"res": str(args.res), "sampler": "stratified", **defines}

    def scene_for(integrator):
        return load_scene(path, {**defines, "integrator": integrator})

    ours = scene_for("sdf_reparam")
    res = fd_check(ours, args.param, eps=args.eps, spp=args.spp, fd_spp=args.fd_spp, mode="forward",
                   seed=args.seed)
    naive_scene = scene_for("sdf_naive")
    params = mi.traverse(naive_scene)
    base = type(params[args.param])(params[args.param])
    direction, _ = _direction(base, 0)
    s = mi.Float(0.0)
    dr.enable_grad(s)
    params[args.param] = base + s * direction
    params.update()
    image = mi.render(naive_scene, params, seed=args.seed + 1, seed_grad=args.seed, spp=args.spp)
    dr.forward(s)
    naive = np.array(dr.grad(image), dtype=np.float64)

    errors = {"sdf_naive": compare_gradients(naive, res.fd)["relative_error"],
              "sdf_reparam": compare_gradients(res.ad, res.fd)["relative_error"]}
    files = {"naive.exr": naive, "reparam.exr": res.ad, "fd.exr": res.fd}
    for name, img in files.items():
        write_image(os.path.join(args.output, name), img)
    strip = os.path.join(args.output, "strip.png")
    write_signed_strip(strip, {"naive (no warp)": naive, "ours (warp)": res.ad, "finite differences": res.fd},
                       title=f"d image / d {args.param}: relative error vs FD  naive "
                             f"{errors['sdf_naive']:.3f}, ours {errors['sdf_reparam']:.3f}")
    print(f"{args.param}: relative error vs FD  sdf_naive {errors['sdf_naive']:.3f}, "
          f"sdf_reparam {errors['sdf_reparam']:.3f} -> {strip}")
    return 0
