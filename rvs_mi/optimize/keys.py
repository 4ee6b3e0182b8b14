"""The config keys as text: ``rvs-mi optimize --keys`` and ``docs/config.md``."""
from __future__ import annotations

import dataclasses
import json

from .config import REQUIRED, SECTIONS

_KIND = {str: "string", int: "integer", float: "number", list: "list", dict: "table", bool: "true/false"}


def _default(f) -> str:
    if f.default is REQUIRED:
        return "(required)"
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return json.dumps(value).replace("{}", "{ }")


def _limits(meta) -> str:
    parts = []
    for name, sign in (("min", ">="), ("max", "<="), ("above", ">"), ("below", "<")):
        if meta[name] is not None:
            parts.append(f"{sign} {meta[name]}")
    if meta["choices"]:
        parts.append("one of " + ", ".join(meta["choices"]))
    if meta["items"] is not None:
        parts.append(f"items: {_KIND[meta['items']]}")
    if meta["length"] is not None:
        lengths = meta["length"] if isinstance(meta["length"], tuple) else (meta["length"],)
        parts.append(" or ".join(map(str, lengths)) + " values")
    return "; ".join(parts)


def keys_markdown() -> str:
    """Every section and key of the config schema: type, default, limits and meaning."""
    lines = ["# `rvs-mi optimize` config keys", "",
             "Generated from the schema (`rvs-mi optimize --keys` prints the same). A key that is "
             "not listed, a value of the wrong type or outside its limits, and a key that has no "
             "effect with the other settings are refused with one line.", ""]
    for name, cls in SECTIONS.items():
        lines += [f"## [{name}]", "", "| key | type | default | limits | meaning |", "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            meta = f.metadata
            lines.append(f"| `{f.name}` | {_KIND[f.type]} | `{_default(f)}` | {_limits(meta)} | "
                         f"{meta['help']} |")
        lines.append("")
    return "\n".join(lines)
