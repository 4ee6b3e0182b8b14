"""Loading Mitsuba scenes with one clear error for bad input."""
from __future__ import annotations

import os
import re

import mitsuba as mi

from .errors import UserError, one_line

_DEFINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_defines(items) -> dict[str, str]:
    """Parse ``-D key=value`` items (as Mitsuba's own command line does)."""
    defines = {}
    for item in items or []:
        match = _DEFINE.match(item)
        if not match:
            raise UserError(f"malformed define {item!r}: expected key=value "
                            "with key a name made of letters, digits and '_'")
        defines[match.group(1)] = match.group(2)
    return defines


def load_scene(path: str, defines: dict[str, str] | None = None, variant: str | None = None):
    """Load a Mitsuba XML scene with rvs-mi's plugins registered.

    ``defines`` substitute ``$key`` in the XML. Raises :class:`UserError` for a
    missing file or a scene Mitsuba rejects.
    """
    from . import init

    if not os.path.isfile(path):
        raise UserError(f"scene file not found: {path}")
    init(variant)
    try:
        return mi.load_file(path, **(defines or {}))
    except Exception as exc:  # Mitsuba reports XML and plugin errors as RuntimeError
        # A Python plugin's UserError arrives wrapped with its traceback: keep its line.
        user = re.search(r"^(?:\S*\.)?UserError: (.+)$", str(exc), re.MULTILINE)
        where = re.search(r"At (.+?\(line \d+, col \d+\))", str(exc))
        if user:
            detail = (f"{where.group(1)}: " if where else "") + user.group(1).strip()
            raise UserError(f"cannot load scene {path}: {one_line(detail)}") from None
        raise UserError(f"cannot load scene {path}: {one_line(exc)}") from None


def check_output_path(path: str) -> None:
    """Fail early (before any rendering) when ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"output path is a directory: {path}")
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {path}: folder {folder} is not writable")


def check_spp(spp: int, name: str = "spp") -> int:
    if spp is None or int(spp) < 1:
        raise UserError(f"{name} must be >= 1 (got {spp})")
    return int(spp)
