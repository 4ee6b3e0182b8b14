"""Camera rigs and the NeRF-synthetic (OpenGL) ↔ Mitsuba camera conventions.

Mitsuba cameras look down +z with +y up (and +x to the left in the image);
NeRF-synthetic ``transform_matrix`` is an OpenGL camera-to-world matrix
(−z forward, +y up, +x right). Both share the camera position; their axes differ by
``diag(−1, 1, −1, 1)``: ``c2w_gl = c2w_mitsuba · diag(−1, 1, −1, 1)`` (its own inverse).
"""
from __future__ import annotations

import math

import mitsuba as mi
import numpy as np

from ..errors import UserError

FLIP = np.diag([-1.0, 1.0, -1.0, 1.0])
RIGS = ("sphere", "hemisphere", "turntable")


def mitsuba_to_gl(c2w: np.ndarray) -> np.ndarray:
    return np.asarray(c2w, dtype=np.float64) @ FLIP


def gl_to_mitsuba(c2w: np.ndarray) -> np.ndarray:
    return np.asarray(c2w, dtype=np.float64) @ FLIP


def look_at(origin, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Mitsuba camera-to-world matrix ``mi.ScalarTransform4f().look_at`` as a float64 array;
    a view along ``up`` takes +z as its up vector instead."""
    origin, target, up = (np.asarray(v, dtype=np.float64) for v in (origin, target, up))
    forward = target - origin
    if np.linalg.norm(np.cross(up, forward)) < 1e-8 * np.linalg.norm(forward):
        up = np.array([0.0, 0.0, 1.0])
    m = mi.ScalarTransform4f().look_at(origin=origin.tolist(), target=target.tolist(), up=up.tolist())
    return np.array(m.matrix, dtype=np.float64)


def rig_positions(kind: str, count: int, radius: float, center=(0.0, 0.0, 0.0), seed: int = 0,
                  elevation_deg: float = 25.0) -> np.ndarray:
    """``count`` camera positions at distance ``radius`` around ``center`` (y is up).

    ``sphere``: seeded uniform directions over the sphere (a Fibonacci lattice with a
    seeded random rotation about y); ``hemisphere``: the same over y ≥ 0;
    ``turntable``: evenly spaced azimuths at a fixed elevation, seeded start angle.
    """
    if kind not in RIGS:
        raise UserError(f"unknown camera rig {kind!r}; choose one of: {', '.join(RIGS)}")
    if count < 1:
        raise UserError(f"number of views must be >= 1 (got {count})")
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    i = np.arange(count) + 0.5
    if kind == "turntable":
        azimuth = phase + 2.0 * math.pi * np.arange(count) / count
        elev = np.full(count, math.radians(elevation_deg))
    else:
        lo = 0.0 if kind == "hemisphere" else -1.0
        y = 1.0 - (1.0 - lo) * i / count          # Fibonacci lattice in y
        elev = np.arcsin(np.clip(y, -1.0, 1.0))
        azimuth = phase + i * math.pi * (3.0 - math.sqrt(5.0))
    dirs = np.stack([np.cos(elev) * np.sin(azimuth), np.sin(elev), np.cos(elev) * np.cos(azimuth)], 1)
    return np.asarray(center, dtype=np.float64) + radius * dirs


def split_views(positions: np.ndarray, test_views: int):
    """Split rig positions into (train, test), test views spread evenly over the rig."""
    n = len(positions)
    test = set(np.linspace(0, n - 1, test_views).round().astype(int).tolist()) if test_views else set()
    train_pos = [p for i, p in enumerate(positions) if i not in test]
    test_pos = [p for i, p in enumerate(positions) if i in test]
    return np.array(train_pos), np.array(test_pos)


def make_sensor(c2w_mitsuba: np.ndarray, fov_x_deg: float, width: int, height: int | None = None,
                spp: int = 16, pixel_format: str = "rgb", near_clip: float = 0.01):
    """A Mitsuba perspective sensor (box filter) from a camera-to-world matrix."""
    height = width if height is None else height
    return mi.load_dict({
        "type": "perspective",
        "fov": float(fov_x_deg),
        "fov_axis": "x",
        "near_clip": near_clip,
        "to_world": mi.ScalarTransform4f(np.asarray(c2w_mitsuba, dtype=np.float64).tolist()),
        "sampler": {"type": "independent", "sample_count": int(spp)},
        "film": {"type": "hdrfilm", "width": int(width), "height": int(height),
                 "pixel_format": pixel_format, "rfilter": {"type": "box"}},
    })
