"""Subcommands of the ``rvs-mi`` command line (one module per subcommand)."""
from __future__ import annotations


def add_scene_arguments(parser) -> None:
    """Arguments shared by commands that load one scene."""
    parser.add_argument("scene", metavar="SCENE.xml", help="Mitsuba XML scene")
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="key=value",
                        help="substitute $key in the XML (repeatable)")
    parser.add_argument("--variant", default=None,
                        help="Mitsuba variant (default: cuda_ad_rgb if usable, else llvm_ad_rgb)")
    from ..scene import seed_arg
    parser.add_argument("--seed", type=seed_arg, default=0, help="random seed in [0, 2^32 - 1] (default 0)")
