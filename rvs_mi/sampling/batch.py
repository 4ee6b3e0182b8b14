"""The pixels one step renders (``PixelBatch``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PixelBatch:
    """The pixels one step renders.

    ``view``: the sensor index when all samples share one view, None when each
    sample has its own (``views``, ``mi.UInt32``, the sampler's ``view_choice="all"``);
    ``pixel_index``: flat indices y·W + x into the sample's view (``mi.UInt32``,
    length N, repeats allowed); ``weight``: detached per-sample weights (``mi.Float``) such that
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
    view_prob: float | None = 1.0
    views: object = None

    @property
    def size(self) -> int:
        """Number of pixel samples N of this batch."""
        import drjit as dr
        return dr.width(self.pixel_index)


    @property
    def flat_index(self):
        """view·P + pixel of each sample: its pixel in all views' images laid end to end
        (``mi.UInt32``, the flat sensor's and :func:`gather_reference`'s index)."""
        import drjit as dr
        import mitsuba as mi
        P = self.image_size[0] * self.image_size[1]
        if self.views is not None:
            return mi.UInt32(self.pixel_index + self.views * dr.opaque(mi.UInt32, P))
        return mi.UInt32(self.pixel_index + dr.opaque(mi.UInt32, self.view * P))
