"""rvs-mi optimize: inverse rendering driven by a TOML config."""
from __future__ import annotations

NAME = "optimize"
HELP = "run an inverse-rendering optimization described by a TOML config"


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG.toml", nargs="?")
    parser.add_argument("--keys", action="store_true",
                        help="list every config section and key (type, default, limits, meaning) and exit")
    parser.add_argument("-o", "--output", default=None, metavar="DIR",
                        help="output folder (default: the config's output.dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in DIR from its checkpoint (the config may change only in "
                             "optimize.steps and output.dir/checkpoint_every/snapshot_every)")
    parser.add_argument("--deterministic", action="store_true",
                        help="bit-identical results for the same config and seed (steps run on one thread); "
                             "a resumed run keeps the mode it was started with")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="section.key=value",
                        help="override a config value (repeatable)")
    parser.add_argument("--variant", default=None, help="Mitsuba variant")


def run(args) -> int:
    from ..errors import UserError
    if args.keys:
        from ..optimize.keys import keys_markdown
        print(keys_markdown())
        return 0
    if args.config is None:
        raise UserError("give a CONFIG.toml (rvs-mi optimize --keys lists the config keys)")

    from .. import init
    from ..optimize.config import load_config
    from ..optimize.loop import run_optimization
    from ..scene import check_output_dir

    config = load_config(args.config, args.overrides)
    out_dir = args.output or config.output.dir
    check_output_dir(out_dir)
    init(args.variant)
    summary = run_optimization(config, out_dir, resume=args.resume, deterministic=args.deterministic)
    if summary.get("finished"):
        print(f"optimize: the run in {out_dir} is finished ({summary['steps_done']} steps done, "
              f"{summary['steps']} asked); nothing to resume")
        return 0
    print(f"optimize: {summary['steps']} steps in {summary['time_s']:.1f} s; "
          f"{'held-out' if summary['heldout'] else 'training-view'} sRGB PSNR "
          f"{summary['psnr_initial']:.2f} -> {summary['psnr_final']:.2f} dB, SSIM "
          f"{summary['ssim_initial']:.3f} -> {summary['ssim_final']:.3f}")
    print(f"optimize: wrote {out_dir}/metrics.csv, curves.png, comparison.png, summary.json")
    return 0
