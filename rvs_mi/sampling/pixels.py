"""Pixel distributions q over the P pixels of a view: uniform (all pixels or N draws) and adaptive.

Each turns the step's uniform variates into N pixel indices, their tiles and
q_p, from which the sampler forms the weights (5.1). All are Dr.Jit operations.
``sample_joint`` draws each sample's view too, from one distribution over the
V·P pixels of all views (the sampler's ``view_choice="all"``), and returns the
joint probability p(v, p) in place of q_p.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .tiles import TileGrid


class UniformPixels:
    """q_p = 1/P: every pixel once in raster order (``raster``, the ``full`` sampler, N = P),
    or N pixels drawn with replacement (``uniform``)."""

    uses_statistic = False

    def __init__(self, grid: TileGrid, n_views: int, n_samples: int, raster: bool):
        self.grid, self.n_views, self.n_samples, self.raster = grid, n_views, n_samples, raster
        self.dims = 0 if raster else 1          # uniform variates per sample

    def sample(self, view: int, u: list):
        """(pixel index, tile, q_p) of the N samples: q is the scalar 1/P."""
        import drjit as dr
        import mitsuba as mi
        P = self.grid.n_pixels
        idx = dr.arange(mi.UInt32, P) if self.raster else dr.minimum(mi.UInt32(u[0] * P), P - 1)
        return idx, self.grid.tile_of(idx), 1.0 / P

    def sample_joint(self, n_views: int, u: list):
        """(pixel index, tile, view, p(v, p) = 1/(V·P)) of the N samples: view and pixel uniform."""
        import drjit as dr
        import mitsuba as mi
        idx, tile, q = self.sample(0, u)
        view = dr.minimum(mi.UInt32(u[-1] * n_views), n_views - 1)
        return idx, tile, view, q / n_views

    def view_mass(self) -> np.ndarray:
        """The views' shares of the joint distribution: 1/V each."""
        return np.full(self.n_views, 1.0 / self.n_views)

    def tile_mass(self, view: int) -> np.ndarray:
        """m_t = n_t / P."""
        return self.grid.tile_pixels / self.grid.n_pixels

    def rebuild(self, s: np.ndarray) -> None:
        """q does not depend on the statistic."""

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        """Nothing to restore: q is fixed."""


class TilePixels:
    """Adaptive q (5.2): a tile t drawn from the pmf

        m_t = (1 − β) s_t n_t / Σ_t' s_t' n_t' + β n_t / P

    (one ``mi.DiscreteDistribution`` per view, rebuilt from the tile statistics
    s_t), then a pixel of the tile uniformly, so q_p = m_{t(p)} / n_{t(p)} ≥ β / P
    and the weights (5.1) are ≤ 1 / (β N V r_v). Before the first rebuild,
    m_t = n_t / P (uniform).
    """

    uses_statistic = True
    raster = False
    dims = 3                                    # tile, x and y in the tile

    def __init__(self, grid: TileGrid, n_views: int, n_samples: int, beta: float, joint: bool = False):
        self.grid, self.n_views, self.n_samples, self.beta = grid, n_views, n_samples, beta
        self.joint = joint
        self.set_mass(np.tile(grid.tile_pixels / grid.n_pixels, (n_views, 1)))

    def set_mass(self, mass: np.ndarray) -> None:
        """Tile pmfs, shape (V, T): normalized per view, one distribution per view; with
        ``joint``, normalized over all cells, one distribution over the V·T cells."""
        import mitsuba as mi
        if self.joint:
            self.mass = mass / mass.sum()
            self._dist = mi.DiscreteDistribution(mi.Float(self.mass.ravel().astype(np.float32)))
        else:
            self.mass = mass / mass.sum(axis=1, keepdims=True)
            self._dist = [mi.DiscreteDistribution(mi.Float(m.astype(np.float32))) for m in self.mass]

    def rebuild(self, s: np.ndarray) -> None:
        """m_t of every view from s_{v,t} (shape V × T) (5.2); with ``joint``, the masses of all
        V·T cells as one pmf: (1 − β) s_{v,t} n_t / Σ_{v',t'} s n + β n_t / (V·P)."""
        n_t = self.grid.tile_pixels
        sn = s * n_t
        if self.joint:
            self.set_mass((1 - self.beta) * sn / sn.sum() + self.beta * n_t / (self.n_views * self.grid.n_pixels))
            return
        self.set_mass((1 - self.beta) * sn / sn.sum(axis=1, keepdims=True) + self.beta * n_t / self.grid.n_pixels)

    def sample(self, view: int, u: list):
        """(pixel index, tile, q_p) of the N samples: tile t ~ m, then a pixel of t uniformly."""
        import mitsuba as mi
        t, m_t = self._dist[view].sample_pmf(u[0])
        idx, n_t = self.grid.pixel_in_tile(t, u[1], u[2])
        return idx, t, m_t / mi.Float(n_t)                      # q_p = m_t / n_t

    def sample_joint(self, n_views: int, u: list):
        """(pixel index, tile, view, p(v, p) = m_{v,t} / n_t) of the N samples: a cell (v, t)
        of the joint pmf, then a pixel of tile t uniformly."""
        import mitsuba as mi
        cell, m = self._dist.sample_pmf(u[0])
        view, t = cell // self.grid.n_tiles, cell % self.grid.n_tiles
        idx, n_t = self.grid.pixel_in_tile(t, u[1], u[2])
        return idx, t, view, m / mi.Float(n_t)

    def tile_mass(self, view: int) -> np.ndarray:
        return self.mass[view] / self.mass[view].sum()

    def view_mass(self) -> np.ndarray:
        """The views' shares of the joint pmf (``joint``), shape (V,)."""
        return self.mass.sum(axis=1)

    def state(self) -> dict:
        return {"mass": np.array(self.mass, dtype=np.float64)}

    def load_state(self, state: dict) -> None:
        if "mass" not in state:
            raise UserError("sampler: checkpoint has no tile masses for the adaptive sampler")
        mass = np.asarray(state["mass"], dtype=np.float64)
        if mass.size != self.n_views * self.grid.n_tiles:
            raise UserError(f"sampler: checkpoint holds {mass.size} tile masses, the run has "
                            f"{self.n_views * self.grid.n_tiles}")
        self.set_mass(mass.reshape(self.n_views, self.grid.n_tiles))


def pixel_distribution(name: str, grid: TileGrid, n_views: int, n_samples: int, beta: float,
                       joint: bool = False):
    """The pixel distribution of the sampler ``name`` (full, uniform, adaptive); ``joint``: one
    adaptive distribution over the tiles of all views."""
    if name == "adaptive":
        return TilePixels(grid, n_views, n_samples, beta, joint)
    return UniformPixels(grid, n_views, n_samples, raster=(name == "full"))
