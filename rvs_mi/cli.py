"""The ``rvs-mi`` command.

Subcommands live in ``rvs_mi.commands``: each module defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. User errors
(:class:`rvs_mi.UserError`, bad arguments) print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command_modules():
    from . import commands
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"rvs_mi.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rvs-mi", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in _command_modules():
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"rvs-mi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if str(exc).startswith("rvs-mi:"):  # environment problems (libLLVM, CUDA)
            print(str(exc), file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("rvs-mi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
