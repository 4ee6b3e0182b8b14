"""The tile grid of an image: the resolution of the sampler's statistics and of its adaptive q."""
from __future__ import annotations

import numpy as np


class TileGrid:
    """A W × H image cut into tiles of ``tile`` × ``tile`` pixels, numbered in raster order
    (t = ty · tiles_x + tx); the last column and row of tiles may be narrower.

    ``tile_pixels``: n_t, the pixel count of each tile (float64, sums to P).
    """

    def __init__(self, width: int, height: int, tile: int):
        self.width, self.height, self.tile = width, height, tile
        self.n_pixels = width * height
        self.tiles_x = -(-width // tile)
        self.tiles_y = -(-height // tile)
        self.n_tiles = self.tiles_x * self.tiles_y
        tx = np.minimum(tile, width - tile * np.arange(self.tiles_x))
        ty = np.minimum(tile, height - tile * np.arange(self.tiles_y))
        self.tile_pixels = np.outer(ty, tx).ravel().astype(np.float64)

    def tile_of(self, idx):
        """The tile of each flat pixel index y·W + x (``mi.UInt32``)."""
        import mitsuba as mi
        x, y = idx % self.width, idx // self.width
        return mi.UInt32((y // self.tile) * self.tiles_x + x // self.tile)

    def tile_map(self) -> np.ndarray:
        """The tile of each pixel as an H × W NumPy array."""
        ty = np.arange(self.height)[:, None] // self.tile
        tx = np.arange(self.width)[None, :] // self.tile
        return ty * self.tiles_x + tx

    def pixel_in_tile(self, t, u_x, u_y):
        """The pixel of tile t at the point (u_x, u_y) ∈ [0, 1)² of the tile, uniform over
        its n_t pixels: (flat index y·W + x, n_t), Dr.Jit arrays."""
        import drjit as dr
        import mitsuba as mi
        x0 = (t % self.tiles_x) * self.tile
        y0 = (t // self.tiles_x) * self.tile
        tw = dr.minimum(self.tile, self.width - x0)
        th = dr.minimum(self.tile, self.height - y0)
        x = x0 + dr.minimum(mi.UInt32(u_x * mi.Float(tw)), tw - 1)
        y = y0 + dr.minimum(mi.UInt32(u_y * mi.Float(th)), th - 1)
        return y * self.width + x, tw * th
