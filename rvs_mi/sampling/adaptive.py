"""The adaptive pixel sampler: tile masses from the observed statistics, mixed with uniform."""
from __future__ import annotations

import numpy as np

from .batch import PixelBatch
from .samplers import UniformSampler


class AdaptiveSampler(UniformSampler):
    """q from tile statistics mixed with uniform by β (eq. 5.2), rebuilt every K steps.

    Statistic ``residual``: s_t = sqrt(E[‖I_p − I_ref,p‖²]) over the tile's
    observed samples (decayed by ``decay`` at each rebuild).  With the L2 loss
    ‖∂ℓ/∂I_p‖ = 2‖I_p − I_ref,p‖, so s_t estimates sqrt(E‖g_p‖²), the optimal sampling density,
    up to the image Jacobian ∂I_p/∂θ, which it takes as equal across pixels;
    the expectation over noisy renders includes both ingredients, the mean
    error (contribution to the gradient) and the render noise (its variance).
    Tiles never observed get the largest observed s (explored first).
    A pixel is drawn by picking a tile t with mass
    m_t = (1 − β) s_t n_t / Σ s n + β n_t / P, then a pixel of the tile
    uniformly, so q_p = m_{t(p)} / n_{t(p)}; weights are ≤ 1/(β N) (uniform
    view choice).
    """

    name = "adaptive"

    def _init_stats(self):
        super()._init_stats()
        self._set_masses(np.tile(self.tile_pixels / self.n_pixels, (self.n_views, 1)))

    def _set_masses(self, mass: np.ndarray) -> None:
        import drjit as dr
        import mitsuba as mi
        mass = mass / mass.sum(axis=1, keepdims=True)
        self._mass = mass
        cdf = np.cumsum(mass, axis=1)
        cdf[:, -1] = 1.0
        self._cdf = mi.Float(cdf.ravel().astype(np.float32))
        self._mass_dr = mi.Float(mass.ravel().astype(np.float32))
        dr.eval(self._cdf, self._mass_dr)

    def _rebuild(self):
        s = super()._rebuild()
        sn = s * self.tile_pixels
        mass = (1 - self.beta) * sn / sn.sum(axis=1, keepdims=True) + self.beta * self.tile_pixels / self.n_pixels
        self._set_masses(mass)

    def tile_probabilities(self, view: int = 0) -> np.ndarray:
        """Current per-tile mass m_t of a view (shape tiles_y × tiles_x)."""
        return self._mass[view].reshape(self.tiles_y, self.tiles_x)

    def pixel_probabilities(self, view: int = 0) -> np.ndarray:
        """Current q_p of a view as an H × W array (sums to 1)."""
        m = self._mass[view] / self.tile_pixels
        t = (np.arange(self.height)[:, None] // self.tile) * self.tiles_x + np.arange(self.width)[None, :] // self.tile
        return m[t]

    def draw(self, step: int) -> PixelBatch:
        import drjit as dr
        import mitsuba as mi
        self._maybe_rebuild(step)
        view, r = self.choose_view(step)
        u_tile, u_x, u_y = self._uniform_samples(step, 3)
        T = self.n_tiles
        base = dr.opaque(mi.UInt32, view * T)
        # Tile t: the first CDF entry of this view's block that exceeds u.
        t = dr.binary_search(0, T - 1, lambda i: dr.gather(mi.Float, self._cdf, base + i) <= u_tile)
        t = dr.minimum(t, T - 1)
        tx, ty = t % self.tiles_x, t // self.tiles_x
        x0, y0 = tx * self.tile, ty * self.tile
        tw = dr.minimum(self.tile, self.width - x0)
        th = dr.minimum(self.tile, self.height - y0)
        x = x0 + dr.minimum(mi.UInt32(u_x * mi.Float(tw)), tw - 1)
        y = y0 + dr.minimum(mi.UInt32(u_y * mi.Float(th)), th - 1)
        idx = y * self.width + x
        mass = dr.gather(mi.Float, self._mass_dr, base + t)
        q = mass / mi.Float(tw * th)                                   # q_p = m_t / n_t
        weight = dr.rcp(q * dr.opaque(mi.Float, self.n_samples * self.n_pixels * self.n_views * r))   # eq. 5.1
        dr.eval(idx, weight, t)
        return PixelBatch(step, view, idx, weight, (self.width, self.height), self.n_views,
                          tile=mi.UInt32(t), view_prob=r)

    def _extra_state(self) -> dict:
        return {"mass": np.array(self._mass, dtype=np.float64)}

    def _load_extra_state(self, extra: dict) -> None:
        if "mass" in extra:
            self._set_masses(np.asarray(extra["mass"], dtype=np.float64).reshape(self.n_views, self.n_tiles))
