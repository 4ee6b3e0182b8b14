"""Smooth 3-D value noise for test/showcase albedos (written as a Mitsuba .vol grid)."""
from __future__ import annotations

import numpy as np


def noise_grid(res: int = 16, seed: int = 0, lo: float = 0.2, hi: float = 0.9) -> np.ndarray:
    """A (res, res, res, 3) float32 grid of smooth random colours in [lo, hi]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (5, 5, 5, 3))
    x = np.linspace(0, 4, res)
    i0 = np.clip(np.floor(x).astype(int), 0, 3)
    a = x - i0
    def lerp(arr, axis):
        idx0 = np.take(arr, i0, axis=axis)
        idx1 = np.take(arr, i0 + 1, axis=axis)
        shape = [1] * arr.ndim
        shape[axis] = res
        w = (a * a * (3 - 2 * a)).reshape(shape)
        return idx0 * (1 - w) + idx1 * w
    g = lerp(lerp(lerp(coarse, 0), 1), 2)
    return (lo + (hi - lo) * g).astype(np.float32)


def write_noise_albedo(path: str, res: int = 16, seed: int = 0) -> str:
    import mitsuba as mi
    mi.VolumeGrid(noise_grid(res, seed)).write(str(path))
    return str(path)
