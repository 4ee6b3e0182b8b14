"""The view of each step: uniform, or in proportion to the views' statistic mass mixed with uniform."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


class ViewChoice:
    """Probabilities r_v of the V views; ``adaptive`` rebuilds them from the tile statistics,
    mixed with uniform by β as q is in (5.2):

        r_v = (1 − β) M_v / Σ_v' M_v' + β / V,   M_v = Σ_t s_{v,t} n_t

    (uniform: r_v = 1/V). A step's weights include 1/(V · r_v) (5.1).
    """

    def __init__(self, n_views: int, beta: float, adaptive: bool):
        self.n_views, self.beta, self.adaptive = n_views, beta, adaptive
        self.prob = np.full(n_views, 1.0 / n_views)

    @property
    def uses_statistic(self) -> bool:
        return self.adaptive

    def rebuild(self, s: np.ndarray, tile_pixels: np.ndarray) -> None:
        """New r_v from s_{v,t} (shape V × T) and the tiles' pixel counts n_t."""
        if self.adaptive:
            mass = (s * tile_pixels).sum(axis=1)
            self.prob = (1 - self.beta) * mass / mass.sum() + self.beta / self.n_views

    def choose(self, u: float) -> tuple[int, float]:
        """The view for the uniform variate u ∈ [0, 1) (inverse CDF) and its probability r_v."""
        if self.n_views == 1:
            return 0, 1.0
        cdf = np.cumsum(self.prob)
        v = int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), self.n_views - 1))
        return v, float(self.prob[v] / cdf[-1])

    def state(self) -> dict:
        return {"view_prob": np.array(self.prob, dtype=np.float64)}

    def load_state(self, state: dict) -> None:
        prob = np.asarray(state["view_prob"], dtype=np.float64).ravel()
        if prob.size != self.n_views:
            raise UserError(f"sampler: checkpoint holds {prob.size} view probabilities, the run has {self.n_views} views")
        self.prob = prob.copy()
