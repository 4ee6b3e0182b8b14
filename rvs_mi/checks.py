"""Argument checks of the Python API: each returns the value as given or raises one ``UserError`` line."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import UserError


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """An integral number (``True``/``False`` and 2.5 are refused) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value):
        raise UserError(f"{name} must be an integer (got {value!r})")
    value = int(value)
    if lo is not None and value < lo:
        raise UserError(f"{name} must be >= {lo} (got {value})")
    if hi is not None and value > hi:
        raise UserError(f"{name} must be <= {hi} (got {value})")
    return value


def number(name: str, value, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float:
    """A finite real number within [lo, hi] (``lo_open``: (lo, hi])."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number (got {value!r})")
    value = float(value)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise UserError(f"{name} must be {'>' if lo_open else '>='} {lo:g} (got {value:g})")
    if hi is not None and value > hi:
        raise UserError(f"{name} must be <= {hi:g} (got {value:g})")
    return value


def vector(name: str, value, n: int = 3) -> np.ndarray:
    """``n`` finite numbers."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be {n} numbers (got {value!r})") from None
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise UserError(f"{name} must be {n} finite numbers (got {value!r})")
    return array


def view(origin, target, up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A camera ``origin`` → ``target`` with ``up`` not along the view (else look_at is NaN)."""
    o, t, u = vector("origin", origin), vector("target", target), vector("up", up)
    d = t - o
    if np.linalg.norm(d) == 0:
        raise UserError("origin and target must differ")
    if np.linalg.norm(np.cross(d / np.linalg.norm(d), u)) <= 1e-6 * max(np.linalg.norm(u), 1e-300):
        raise UserError(f"up {up!r} must not be parallel to the view direction (or zero)")
    return o, t, u
