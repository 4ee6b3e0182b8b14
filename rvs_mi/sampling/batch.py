"""The pixels one step renders (``PixelBatch``), the pixel budget and the per-step random streams."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass
class PixelBatch:
    """The pixels one step renders.

    ``view``: the sensor index (one view per step); ``pixel_index``: flat
    indices y·W + x into that view's image (``mi.UInt32``, length N, repeats
    allowed); ``weight``: detached per-sample weights (``mi.Float``) such that
    Σ_j weight_j ℓ_j is an unbiased estimate of the mean per-pixel loss (mean
    over views and pixels); ``tile``: the tile of each sample (adaptive
    statistics); ``full``: True when the batch is the whole image in raster
    order (``render_pixels`` then renders with the real sensor).
    """
    step: int
    view: int
    pixel_index: object
    weight: object
    image_size: tuple
    n_views: int
    full: bool = False
    tile: object = None
    view_prob: float = 1.0

    @property
    def size(self) -> int:
        """Number of pixel samples N of this batch."""
        import drjit as dr
        return dr.width(self.pixel_index)


def _rng(seed: int, step: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(step), int(stream)])


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise UserError(f"sampler: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def resolve_budget(budget, n_pixels: int) -> int:
    """Pixel samples per step from ``budget``: a float in (0, 1] is a fraction of
    the image, an integer (or integral float > 1) a count in [1, P]."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise UserError(f"sampler: budget must be a number, got {budget!r}")
    if not math.isfinite(budget) or budget <= 0:
        raise UserError(f"sampler: budget must be > 0 (a fraction in (0, 1] or a pixel count), got {budget!r}")
    if isinstance(budget, (int, np.integer)) or budget > 1:
        if budget != int(budget):
            raise UserError(f"sampler: budget {budget!r} > 1 must be a whole pixel count")
        n = int(budget)
    else:
        n = max(1, int(round(float(budget) * n_pixels)))
    if n > n_pixels:
        raise UserError(f"sampler: budget of {n} pixel samples exceeds the {n_pixels} pixels of an image")
    return n
