"""Per-(view, tile) statistics of the rendered pixels, from which q (5.2) and the view choice are built.

Statistic ``residual``: per sample the mean over channels of (I_p − I_ref,p)².
With the L2 loss ‖∂ℓ/∂I_p‖ = 2‖I_p − I_ref,p‖, so s_t = sqrt(E[(I_p − I_ref,p)²])
estimates sqrt(E‖g_p‖²), the optimal sampling density, up to the image Jacobian
∂I_p/∂θ, which it takes as equal across pixels; the expectation over noisy
renders holds both the mean error (the pixel's share of the gradient) and the
render noise (its variance).

Statistic ``gradient``: per sample (Σ_c ∂ℓ/∂I_c · t_c)² for the tangent
t = ∂I/∂θ · v along a random direction v of unit variance per parameter
(``render_pixels_tangent``); its mean over v is ‖∂ℓ_p/∂θ‖², so error that the
parameters cannot change gets no weight.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..optimize.losses import DEFAULT_LOSS, HUBER_DELTA, pixel_loss_derivative


def _per_sample_sq_projected_gradient(values, reference, tangent, kind=DEFAULT_LOSS, delta=HUBER_DELTA):
    """(Σ_c ∂ℓ/∂I_c · t_c)² per sample (detached): ℓ = mean over channels of the loss."""
    import drjit as dr
    from .loss import channel_mean
    if tuple(tangent.shape) != tuple(values.shape):
        raise UserError(f"sampler: tangent {tuple(tangent.shape)} and values {tuple(values.shape)} differ in shape")
    dl = pixel_loss_derivative(dr.detach(values.array) - dr.detach(reference.array), kind, delta)
    return dr.square(channel_mean(dl * dr.detach(tangent.array), values.shape[1]))


def _per_sample_sq_residual(values, reference):
    """Mean over channels of (I − I_ref)², one ``mi.Float`` entry per sample (detached)."""
    import drjit as dr
    from .loss import channel_mean
    diff = dr.detach(values.array) - dr.detach(reference.array)
    return channel_mean(dr.square(diff), values.shape[1])


class TileStatistics:
    """Decayed sums of a per-sample statistic and of the sample counts per (view, tile) cell.

    The sums are float32 NumPy arrays accumulated on the host in sample order:
    parallel float atomics (``dr.scatter_add``) add in a varying order, and their
    last-bit differences would change later draws, so a resumed run would not be
    bit-identical to an uninterrupted one.
    """

    def __init__(self, statistic: str, n_views: int, n_tiles: int, decay: float):
        self.statistic, self.n_views, self.n_tiles = statistic, n_views, n_tiles
        self.decay = np.float32(decay)
        self.sum = np.zeros(n_views * n_tiles, dtype=np.float32)     # decayed Σ of the statistic
        self.count = np.zeros(n_views * n_tiles, dtype=np.float32)   # decayed number of samples

    def per_sample(self, values, reference, tangent=None, kind=DEFAULT_LOSS, delta=HUBER_DELTA):
        """The statistic of each sample of a batch (``mi.Float``); None for ``gradient`` without a tangent."""
        if self.statistic == "residual":
            return _per_sample_sq_residual(values, reference)
        if tangent is None:
            return None
        return _per_sample_sq_projected_gradient(values, reference, tangent, kind, delta)

    def add(self, view, tile, stat) -> None:
        """Add the samples' statistic ``stat`` to the cells (view, tile_j), in sample order;
        ``view``: one view for all samples, or each sample's view (an array)."""
        view = view if isinstance(view, (int, np.integer)) else np.array(view, dtype=np.int64)
        cell = np.array(tile, dtype=np.int64) + view * self.n_tiles
        np.add.at(self.sum, cell, np.array(stat, dtype=np.float32))
        np.add.at(self.count, cell, np.float32(1.0))

    def fade(self) -> None:
        """Scale the sums by ``decay``: older observations fade, the statistic tracks the changing error."""
        self.sum *= self.decay
        self.count *= self.decay

    def tile_statistic(self) -> np.ndarray:
        """s_t per (view, tile), shape (V, T): sqrt of the mean observed statistic;
        cells never observed get the largest observed value (optimistic prior, so
        they are explored), and all cells get 1 while nothing was observed."""
        total = self.sum.astype(np.float64)
        count = self.count.astype(np.float64)
        seen = count > 0
        s = np.zeros_like(total)
        s[seen] = np.sqrt(np.maximum(total[seen] / count[seen], 0.0))
        if not seen.any() or not np.isfinite(s).all() or s.max() <= 0:
            s[:] = 1.0
        else:
            s[~seen] = s[seen].max()
        return s.reshape(self.n_views, self.n_tiles)

    def state(self) -> dict:
        return {"sum": self.sum.copy(), "count": self.count.copy()}

    def load_state(self, state: dict) -> None:
        self.sum = np.asarray(state["sum"], dtype=np.float32).ravel().copy()
        self.count = np.asarray(state["count"], dtype=np.float32).ravel().copy()
        if self.sum.size != self.n_views * self.n_tiles or self.count.size != self.sum.size:
            raise UserError(f"sampler: checkpoint statistics hold {self.sum.size} cells, "
                            f"the run has {self.n_views * self.n_tiles}")
