"""rvs-mi fdcheck: finite differences against forward/reverse-mode AD."""
from __future__ import annotations

from . import add_scene_arguments

NAME = "fdcheck"
HELP = "check a parameter's image gradient against central finite differences"


def add_arguments(parser) -> None:
    from ..scene import seed_arg
    add_scene_arguments(parser)
    parser.add_argument("--param", required=True, metavar="KEY", help="a key of mi.traverse(scene)")
    parser.add_argument("--eps", type=float, default=None,
                        help="finite-difference step (default 1e-3 x max(1, RMS of the parameter))")
    parser.add_argument("--spp", type=int, default=64, help="spp of the AD renders (default 64)")
    parser.add_argument("--fd-spp", type=int, default=None, help="spp of the FD renders (default: --spp)")
    parser.add_argument("--mode", choices=["forward", "backward", "both"], default="both")
    parser.add_argument("--direction-seed", type=seed_arg, default=0,
                        help="seed of the perturbation direction for vector/tensor parameters")
    parser.add_argument("--tol", type=float, default=None,
                        help="exit 1 when the relative error exceeds this")
    parser.add_argument("-o", "--output", default="fdcheck", metavar="DIR",
                        help="output folder (default ./fdcheck)")


def run(args) -> int:
    from ..errors import UserError
    from ..scene import check_output_dir, check_spp, load_scene, parse_defines
    from ..validate import fd_check, write_fd_outputs

    defines = parse_defines(args.defines)
    check_spp(args.spp, "--spp")
    if args.fd_spp is not None:
        check_spp(args.fd_spp, "--fd-spp")
    if args.eps is not None and not args.eps > 0:
        raise UserError(f"--eps must be > 0 (got {args.eps})")
    if args.tol is not None and not args.tol > 0:
        raise UserError(f"--tol must be > 0 (got {args.tol})")
    check_output_dir(args.output)
    scene = load_scene(args.scene, defines, args.variant)
    result = fd_check(scene, args.param, eps=args.eps, spp=args.spp, fd_spp=args.fd_spp,
                      mode=args.mode, seed=args.seed, direction_seed=args.direction_seed,
                      progress=lambda stage: print(f"fdcheck: {stage} ...", flush=True))
    paths = write_fd_outputs(result, args.output)
    rep = result.report
    for m in ("forward", "backward"):
        if m in rep:
            r = rep[m]
            extra = (f", correlation {r['correlation']:.4f}, sign agreement {r['sign_agreement']:.3f}"
                     if m == "forward" else f" (AD {r['ad']:.6g} vs FD {r['fd']:.6g})")
            print(f"{m:>8}: relative error {r['relative_error']:.4f}{extra}")
    print(f"report: {paths['report']}")
    if args.tol is not None and rep["relative_error"] > args.tol:
        print(f"FAIL: relative error {rep['relative_error']:.4f} > tol {args.tol}")
        return 1
    return 0
