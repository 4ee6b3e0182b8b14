"""The pixels one step renders (``PixelBatch``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PixelBatch:
    """The pixels one step renders.

    ``view``: the sensor index (one view per step); ``pixel_index``: flat
    indices y·W + x into that view's image (``mi.UInt32``, length N, repeats
    allowed); ``weight``: detached per-sample weights (``mi.Float``) such that
    Σ_j weight_j ℓ_j is an unbiased estimate of the mean per-pixel loss (mean
    over views and pixels); ``tile``: the tile of each sample (the cell in
    which ``observe`` records its statistic); ``full``: True when the batch is
    the whole image in raster order (``render_pixels`` then renders with the
    real sensor); ``view_prob``: r_v, the probability of drawing this view.
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

