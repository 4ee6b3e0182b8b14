"""Pixel samplers: which pixels (and which view) one optimization step renders.

Yan et al. 2025 (image-space adaptive sampling). A step draws N pixel samples p_1..p_N with replacement from a
distribution q over the P pixels of one view v (drawn with probability r_v),
and estimates the mean per-pixel loss over all views and pixels by

    L̂ = Σ_j w_j ℓ_{p_j},   w_j = 1 / (N · P · q_{p_j} · V · r_v)        (5.1)

(weights detached), unbiased for any q > 0, r > 0.  ``full`` renders every
pixel of the chosen view (w = 1/P), ``uniform`` uses q = 1/P, ``adaptive``

    q_p = (1 − β) s_{t(p)} / Σ_{p'} s_{t(p')} + β / P                   (5.2)

with s_t ≈ sqrt(E ‖g_p‖²) estimated per tile t (see :class:`AdaptiveSampler`).
Drawing and weighting are Dr.Jit; the per-tile statistics are summed on the
host in sample order (see ``observe``), and q is rebuilt there every K steps.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .batch import PixelBatch, _check_int, _rng, resolve_budget  # noqa: F401  (re-exported)
from .statistics import _per_sample_sq_projected_gradient, _per_sample_sq_residual

SAMPLERS = ("full", "uniform", "adaptive")
VIEW_CHOICES = ("uniform", "adaptive")
STATISTICS = ("residual", "gradient")


class PixelSampler:
    """Common part: image layout, per-step view choice, state."""

    name = "?"

    def __init__(self, image_size, n_views=1, budget=1.0, beta=0.2, rebuild_every=10, tile=8,
                 statistic="residual", view_choice="uniform", seed=0, decay=0.5):
        try:
            w, h = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise UserError(f"sampler: image_size must be (width, height), got {image_size!r}") from None
        if w < 1 or h < 1:
            raise UserError(f"sampler: image_size must be positive, got {image_size!r}")
        self.width, self.height = w, h
        self.n_pixels = w * h
        self.n_views = _check_int("n_views", n_views, 1)
        try:
            beta = float(beta)
        except (TypeError, ValueError):
            raise UserError(f"sampler: beta must be a number in (0, 1], got {beta!r}") from None
        if not (0.0 < beta <= 1.0):
            raise UserError(f"sampler: beta must be in (0, 1], got {beta!r}")
        self.beta = beta
        self.rebuild_every = _check_int("rebuild_every (K)", rebuild_every, 1)
        self.tile = _check_int("tile", tile, 1)
        if statistic not in STATISTICS:
            raise UserError(f"sampler: unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
        self.statistic = statistic
        if view_choice not in VIEW_CHOICES:
            raise UserError(f"sampler: unknown view_choice {view_choice!r}; choose one of {', '.join(VIEW_CHOICES)}")
        self.view_choice = view_choice
        if not (0.0 <= float(decay) < 1.0):
            raise UserError(f"sampler: decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.seed = int(seed)
        self.n_samples = resolve_budget(budget, self.n_pixels) if self.name != "full" else self.n_pixels
        # Tiles: the statistics' resolution (adaptive q and adaptive view choice).
        self.tiles_x = -(-w // self.tile)
        self.tiles_y = -(-h // self.tile)
        self.n_tiles = self.tiles_x * self.tiles_y
        tx = np.minimum(self.tile, w - self.tile * np.arange(self.tiles_x))
        ty = np.minimum(self.tile, h - self.tile * np.arange(self.tiles_y))
        self.tile_pixels = np.outer(ty, tx).ravel().astype(np.float64)     # pixels per tile
        self._view_prob = np.full(self.n_views, 1.0 / self.n_views)
        self._init_stats()

    # ------------------------------------------------------------------ statistics
    @property
    def needs_tangent(self) -> bool:
        """True when ``observe`` wants the batch's tangent image: the ``gradient`` statistic
        feeds q (adaptive) or the view choice (``view_choice="adaptive"``)."""
        return self.statistic == "gradient" and (self.name == "adaptive" or self.view_choice == "adaptive")

    def _init_stats(self):
        import drjit as dr
        import mitsuba as mi
        size = self.n_views * self.n_tiles
        self._sum = dr.zeros(mi.Float, size)     # decayed Σ of the statistic over observed samples
        self._count = dr.zeros(mi.Float, size)   # decayed number of observed samples
        self._last_rebuild = -1

    def observe(self, batch: PixelBatch, values, reference, tangent=None, kind: str = "l2",
                delta: float = 0.1) -> None:
        """Record per-pixel statistics of a rendered batch.

        ``values``/``reference``: (N, C) tensors of the rendered and reference
        pixels. The ``residual`` statistic records ‖I_p − I_ref,p‖² (mean over
        channels) per sample into its (view, tile) cell. The ``gradient``
        statistic needs ``tangent`` = ∂I/∂θ·v for a random direction v of unit
        variance per parameter (``render_pixels_tangent``) and records
        (∂ℓ_p/∂I_p · tangent_p)², whose mean over v is ‖∂ℓ_p/∂θ‖² (loss
        ``kind`` as in ``weighted_loss``). The per-cell sums are
        accumulated on the host in sample order: parallel float atomics
        (``dr.scatter_add``) add in a varying order, and the last-bit
        differences changed later draws, which broke bit-exact resumes. (The
        optimization loop reads the rendered pixels on the host anyway.)
        """
        import drjit as dr
        import mitsuba as mi
        if batch.tile is None:
            return
        if self.statistic == "gradient":
            if tangent is None and not self.needs_tangent:
                return                      # nothing reads the statistic
            if tangent is None:
                raise UserError("sampler: the 'gradient' statistic needs the tangent image of the batch "
                                "(rvs_mi.sampling.render_pixels_tangent)")
            r2 = np.array(_per_sample_sq_projected_gradient(values, reference, tangent, kind, delta),
                          dtype=np.float32)
        else:
            r2 = np.array(_per_sample_sq_residual(values, reference), dtype=np.float32)
        cell = np.array(batch.tile, dtype=np.int64) + batch.view * self.n_tiles
        total = np.array(self._sum, dtype=np.float32)
        count = np.array(self._count, dtype=np.float32)
        np.add.at(total, cell, r2)
        np.add.at(count, cell, np.float32(1.0))
        self._sum, self._count = mi.Float(total), mi.Float(count)

    def tile_statistic(self) -> np.ndarray:
        """s_t per (view, tile), shape (V, T): sqrt of the mean observed statistic;
        cells never observed get the largest observed value (optimistic prior, so
        they are explored), and all cells get 1 while nothing was observed."""
        total = np.array(self._sum, dtype=np.float64)
        count = np.array(self._count, dtype=np.float64)
        seen = count > 0
        s = np.zeros_like(total)
        s[seen] = np.sqrt(np.maximum(total[seen] / count[seen], 0.0))
        if not seen.any() or not np.isfinite(s).all() or s.max() <= 0:
            s[:] = 1.0
        else:
            s[~seen] = s[seen].max()
        return s.reshape(self.n_views, self.n_tiles)

    def _maybe_rebuild(self, step: int) -> None:
        """Rebuild the distributions every K steps (from step K on)."""
        if step < self.rebuild_every or step // self.rebuild_every == self._last_rebuild // self.rebuild_every:
            return
        self._last_rebuild = step
        self._rebuild()

    def _rebuild(self) -> None:
        import drjit as dr
        import mitsuba as mi
        s = self.tile_statistic()
        if self.view_choice == "adaptive":
            mass = (s * self.tile_pixels).sum(axis=1)
            self._view_prob = (1 - self.beta) * mass / mass.sum() + self.beta / self.n_views
        # Older observations fade: statistics track the changing error.
        self._sum = mi.Float(self._sum * self.decay)
        self._count = mi.Float(self._count * self.decay)
        dr.eval(self._sum, self._count)
        return s

    def choose_view(self, step: int) -> tuple[int, float]:
        """The view of this step and its probability r_v (a function of seed, step, state)."""
        if self.n_views == 1:
            return 0, 1.0
        u = _rng(self.seed, step, 1).random()
        cdf = np.cumsum(self._view_prob)
        v = int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), self.n_views - 1))
        return v, float(self._view_prob[v] / cdf[-1])

    def pixels_per_step(self, batch: PixelBatch | None = None) -> int:
        """Pixel samples rendered per step (N; P for ``full``)."""
        return self.n_samples if batch is None else batch.size

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain Python/NumPy state for checkpoints (JSON-friendly apart from arrays)."""
        return {"name": self.name, "layout": [self.width, self.height, self.n_views, self.n_tiles],
                "sum": np.array(self._sum, dtype=np.float32), "count": np.array(self._count, dtype=np.float32),
                "last_rebuild": int(self._last_rebuild), "view_prob": np.array(self._view_prob, dtype=np.float64),
                "extra": self._extra_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; a state of another sampler or layout is a UserError."""
        import drjit as dr
        import mitsuba as mi
        try:
            name, layout = state["name"], [int(v) for v in state["layout"]]
        except (KeyError, TypeError, ValueError):
            raise UserError("sampler: checkpoint has no valid sampler state") from None
        if name != self.name or layout != [self.width, self.height, self.n_views, self.n_tiles]:
            raise UserError(f"sampler: checkpoint holds a {name!r} sampler for layout {layout}, "
                            f"the run asks for {self.name!r} with {[self.width, self.height, self.n_views, self.n_tiles]}")
        self._sum = mi.Float(np.asarray(state["sum"], dtype=np.float32).ravel())
        self._count = mi.Float(np.asarray(state["count"], dtype=np.float32).ravel())
        self._last_rebuild = int(state["last_rebuild"])
        self._view_prob = np.asarray(state["view_prob"], dtype=np.float64).ravel()
        dr.eval(self._sum, self._count)
        self._load_extra_state(state.get("extra") or {})

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass

    def draw(self, step: int) -> PixelBatch:
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}[{self.width}x{self.height}, views={self.n_views}, "
                f"N={self.n_samples}, beta={self.beta}, K={self.rebuild_every}, tile={self.tile}]")


class FullSampler(PixelSampler):
    """Every pixel of one view per step, w = 1 / (P · V · r_v)."""

    name = "full"

    def draw(self, step: int) -> PixelBatch:
        import drjit as dr
        import mitsuba as mi
        self._maybe_rebuild(step)
        view, r = self.choose_view(step)
        idx = dr.arange(mi.UInt32, self.n_pixels)
        weight = dr.full(mi.Float, 1.0, self.n_pixels) * dr.opaque(mi.Float, 1.0 / (self.n_pixels * self.n_views * r))
        return PixelBatch(step, view, idx, weight, (self.width, self.height), self.n_views, full=True,
                          tile=self._tile_of(idx), view_prob=r)

    def _tile_of(self, idx):
        import mitsuba as mi
        x, y = idx % self.width, idx // self.width
        return mi.UInt32((y // self.tile) * self.tiles_x + x // self.tile)


class UniformSampler(FullSampler):
    """N pixels with replacement, q = 1/P: w = 1 / (N · V · r_v)."""

    name = "uniform"

    def _uniform_samples(self, step: int, dims: int):
        import drjit as dr
        import mitsuba as mi
        # PCG32 per sample, stream from (seed, step): reproducible and resumable.
        # (opaque: per-step scalars must not become kernel literals, or every step recompiles)
        state = dr.opaque(mi.UInt64, int(_rng(self.seed, step, 2).integers(2**62)))
        rng = mi.PCG32(self.n_samples, initstate=state)
        return [rng.next_float32() for _ in range(dims)]

    def draw(self, step: int) -> PixelBatch:
        import drjit as dr
        import mitsuba as mi
        self._maybe_rebuild(step)
        view, r = self.choose_view(step)
        (u,) = self._uniform_samples(step, 1)
        idx = dr.minimum(mi.UInt32(u * self.n_pixels), self.n_pixels - 1)
        weight = dr.full(mi.Float, 1.0, self.n_samples) * dr.opaque(mi.Float, 1.0 / (self.n_samples * self.n_views * r))
        dr.eval(idx, weight)
        return PixelBatch(step, view, idx, weight, (self.width, self.height), self.n_views,
                          tile=self._tile_of(idx), view_prob=r)


def make_sampler(name: str, image_size, n_views: int = 1, budget=0.1, beta: float = 0.2,
                 rebuild_every: int = 10, tile: int = 8, statistic: str = "residual",
                 view_choice: str = "uniform", seed: int = 0, decay: float = 0.5) -> PixelSampler:
    """A pixel sampler by name (``full``, ``uniform``, ``adaptive``); see the package docstring."""
    from .adaptive import AdaptiveSampler
    classes = {"full": FullSampler, "uniform": UniformSampler, "adaptive": AdaptiveSampler}
    if name not in classes:
        raise UserError(f"unknown pixel sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return classes[name](image_size, n_views=n_views, budget=budget, beta=beta, rebuild_every=rebuild_every,
                          tile=tile, statistic=statistic, view_choice=view_choice, seed=seed, decay=decay)
