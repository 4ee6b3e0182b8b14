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
        scene = mi.load_file(path, **(defines or {}))
    except Exception as exc:  # Mitsuba reports XML and plugin errors as RuntimeError
        # A Python plugin's UserError arrives wrapped with its traceback: keep its line.
        user = re.search(r"^(?:\S*\.)?UserError: (.+)$", str(exc), re.MULTILINE)
        where = re.search(r"At (.+?\(line \d+, col \d+\))", str(exc))
        if user:
            detail = (f"{where.group(1)}: " if where else "") + user.group(1).strip()
            raise UserError(f"cannot load scene {path}: {one_line(detail)}") from None
        # Another Python exception raised in a plugin: its last line holds the cause.
        cause = re.findall(r"^(?:\S*\.)?(\w*(?:Error|Exception)): (.+)$", str(exc), re.MULTILINE)
        if cause and "Traceback (most recent call last)" in str(exc):
            kind, text = cause[-1]
            detail = (f"{where.group(1)}: " if where else "") + f"{kind}: {text.strip()}"
            raise UserError(f"cannot load scene {path}: {one_line(detail)}") from None
        raise UserError(f"cannot load scene {path}: {one_line(exc)}") from None
    for sensor in scene.sensors():
        film = sensor.film()
        for axis, n, c in zip(("width", "height"), film.size(), film.crop_size()):
            if int(n) < 1 or int(c) < 1:
                raise UserError(f"cannot load scene {path}: film {axis} must be >= 1 "
                                f"(got {int(n)}, crop {int(c)})")
    return scene


def check_output_path(path: str) -> None:
    """Fail early (before any rendering) when the file ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"output path is a directory: {path}")
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {path}: folder {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {path}: the file exists and is not writable")


def check_output_dir(path: str, flag: str = "-o") -> None:
    """Fail early (before any rendering) when the output folder ``path`` cannot be used: it
    is an existing file, or it (or, if missing, its nearest existing parent, in which it will
    be created) is not a writable folder."""
    full = os.path.abspath(path)
    if os.path.exists(full) and not os.path.isdir(full):
        raise UserError(f"{flag} {path}: exists and is not a folder")
    probe = full
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError(f"{flag} {path}: cannot create a folder under {probe}, which is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: folder {probe} is not writable")


SEED_MAX = 2**32 - 1


def seed_arg(text: str) -> int:
    """argparse type of a seed: an integer in [0, 2^32 - 1] (Mitsuba's seeds are 32-bit unsigned)."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed must be in [0, {SEED_MAX}] (got {value})")
    return value


def check_spp(spp: int, name: str = "spp") -> int:
    if spp is None or int(spp) < 1:
        raise UserError(f"{name} must be >= 1 (got {spp})")
    return int(spp)


# --------------------------------------------------------------------------- plugin properties
#: Properties that Mitsuba's integrator base classes read but rvs-mi's integrators do not use:
#: given to one of them, they are refused rather than silently ignored.
BASE_INTEGRATOR_PROPERTIES = ("max_depth", "rr_depth", "hide_emitters", "samples_per_pass", "timeout")

_KIND_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a finite number",
               str: "a string", "vec3": "three finite numbers (or one)"}


def _plugin(props) -> str:
    try:
        return props.plugin_name() or "plugin"
    except Exception:
        return "plugin"


def _shown(props, name) -> str:
    kind = str(props.type(name)).rsplit(".", 1)[-1].lower()
    try:
        value = props[name]
    except Exception:
        return kind
    return f"{kind} {value!r}" if kind in ("bool", "integer", "float", "string") else kind


def refuse_properties(props, names, reason: str) -> None:
    """``UserError`` naming the first of ``names`` that ``props`` holds (with ``reason``)."""
    for name in names:
        if name in props:
            raise UserError(f"{_plugin(props)}: {name} {reason}")


def prop(props, name: str, kind, default=None, *, min=None, max=None, above=None, choices=None):
    """Property ``name`` of Mitsuba ``props`` as ``kind``, checked against its Mitsuba type.

    ``kind`` is ``bool``, ``int``, ``float``, ``str`` or ``"vec3"`` (a point, vector, colour
    or one number for all three). A value of another Mitsuba type is refused, as is a
    non-integral number for an integer, a non-finite number, or a string that is not
    exactly ``true``/``false`` (booleans) or one number (numbers). ``min``/``max``
    (inclusive), ``above`` (exclusive) and ``choices`` bound the value. Absent: ``default``
    (unchecked). Every refusal is a :class:`UserError` that names the plugin and property.
    """
    if name not in props:
        return default
    import math

    T = mi.Properties.Type
    ptype = props.type(name)

    def bad(extra=""):
        return UserError(f"{_plugin(props)}: {name} must be {_KIND_NAMES[kind]}{extra} "
                         f"(got {_shown(props, name)})")

    value = props[name]
    if kind is bool:
        if ptype == T.Bool:
            return bool(value)
        if ptype == T.String and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad()
    if kind is str:
        if ptype != T.String:
            raise bad()
        if choices is not None and value not in choices:
            raise UserError(f"{_plugin(props)}: {name} must be one of {', '.join(choices)} "
                            f"(got {value!r})")
        return value
    if kind == "vec3":
        if ptype in (T.Vector, T.Color):
            out = [float(c) for c in value]
        elif ptype in (T.Float, T.Integer):
            out = [float(value)] * 3
        elif ptype == T.String:
            try:
                parts = [float(c) for c in value.replace(",", " ").split()]
            except ValueError:
                raise bad() from None
            if len(parts) not in (1, 3):
                raise bad()
            out = parts * 3 if len(parts) == 1 else parts
        else:
            raise bad()
        if len(out) != 3 or not all(math.isfinite(c) for c in out):
            raise bad()
        return out
    # int / float
    if ptype == T.Integer:
        number = int(value)
    elif ptype == T.Float:
        number = float(value)
    elif ptype == T.String:
        text = value.strip()
        try:
            number = int(text) if kind is int else float(text)
        except ValueError:
            raise bad() from None
    else:
        raise bad()
    if kind is int:
        if isinstance(number, float):
            if not (math.isfinite(number) and number == int(number)):
                raise bad()
            number = int(number)
    else:
        number = float(number)
        if not math.isfinite(number):
            raise bad()
    rule = None
    if min is not None and number < min:
        rule = f">= {min}"
    elif max is not None and number > max:
        rule = f"<= {max}"
    elif above is not None and not number > above:
        rule = f"> {above}"
    if choices is not None and number not in choices:
        rule = "one of " + ", ".join(str(c) for c in choices)
    if rule:
        raise UserError(f"{_plugin(props)}: {name} must be {rule} (got {number})")
    return number
