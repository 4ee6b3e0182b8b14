"""The pixel sampler: which pixels (and which view) one optimization step renders.

Yan et al. 2025 (image-space adaptive sampling). A step draws N pixel samples p_1..p_N with replacement from a
distribution q over the P pixels of one view v (drawn with probability r_v),
and estimates the mean per-pixel loss over all views and pixels by

    L̂ = Σ_j w_j ℓ_{p_j},   w_j = 1 / (N · P · q_{p_j} · V · r_v)        (5.1)

(weights detached), unbiased for any q > 0, r > 0.  With ``view_choice="all"`` every
sample draws its own view: (v_j, p_j) comes from one distribution over the V·P pixels of all
views, p(v, p) = r_v q_p in (5.1), so one step's batch spreads over all views and one render
serves them.  ``full`` renders every
pixel of the chosen view (w = 1/(P · V · r_v)), ``uniform`` uses q = 1/P, ``adaptive``

    q_p = (1 − β) s_{t(p)} / Σ_{p'} s_{t(p')} + β / P                   (5.2)

with s_t ≈ sqrt(E ‖g_p‖²) estimated per tile t (see ``statistics``).

One :class:`PixelSampler` composes four parts: the tile grid (``tiles``), the
per-(view, tile) statistics (``statistics``), the view choice (``views``) and
the pixel distribution (``pixels``). Drawing and weighting are Dr.Jit; the
statistics are summed on the host in sample order, and q and r are rebuilt
there every K steps. A draw is a function of (seed, step, state).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..optimize.losses import DEFAULT_LOSS, HUBER_DELTA
from .batch import PixelBatch
from .defaults import SAMPLER_DEFAULTS, SamplerOptions
from .pixels import pixel_distribution
from .statistics import TileStatistics
from .tiles import TileGrid
from .views import ViewChoice


def _rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """The host random stream ``stream`` of a step (1: view choice, 2: the PCG32 state)."""
    return np.random.default_rng([int(seed), int(step), int(stream)])


class PixelSampler:
    """A sampler built from parts; see the module docstring and :func:`make_sampler`."""

    def __init__(self, name: str, options: SamplerOptions):
        self.name, self.options = name, options
        self.grid = TileGrid(options.width, options.height, options.tile)
        self.stats = TileStatistics(options.statistic, options.n_views, self.grid.n_tiles, options.decay)
        self.joint = options.view_choice == "all"
        self.views = ViewChoice(options.n_views, options.beta, adaptive=options.view_choice == "adaptive")
        self.pixels = pixel_distribution(name, self.grid, options.n_views, options.n_samples, options.beta,
                                         joint=self.joint)
        self.n_samples = options.n_samples
        self._last_rebuild = -1

    @property
    def n_pixels(self) -> int:
        return self.grid.n_pixels

    @property
    def n_views(self) -> int:
        return self.options.n_views

    @property
    def needs_tangent(self) -> bool:
        """True when ``observe`` wants the batch's tangent image: the ``gradient`` statistic
        feeds q (adaptive) or the view choice (``view_choice="adaptive"``)."""
        reads = self.pixels.uses_statistic or self.views.uses_statistic
        return self.options.statistic == "gradient" and reads

    # ------------------------------------------------------------------ drawing
    def _uniforms(self, step: int, dims: int) -> list:
        """``dims`` uniform variates per sample: PCG32, N lanes, state from (seed, step)."""
        import drjit as dr
        import mitsuba as mi
        if dims == 0:
            return []
        # (opaque: a per-step scalar must not become a kernel literal, or every step recompiles)
        state = dr.opaque(mi.UInt64, int(_rng(self.options.seed, step, 2).integers(2**62)))
        rng = mi.PCG32(self.n_samples, initstate=state)
        return [rng.next_float32() for _ in range(dims)]

    def draw(self, step: int) -> PixelBatch:
        """The batch of ``step``: view v ~ r, N pixels ~ q, weights (5.1)."""
        import drjit as dr
        import mitsuba as mi
        self._maybe_rebuild(step)
        if self.joint:
            return self._draw_joint(step)
        view, r = self.views.choose(_rng(self.options.seed, step, 1).random())
        idx, tile, q = self.pixels.sample(view, self._uniforms(step, self.pixels.dims))
        scale = self.n_samples * self.n_pixels * self.n_views * r           # w = 1 / (scale · q)   (5.1)
        if isinstance(q, float):            # q = 1/P: one weight for all samples
            weight = dr.full(mi.Float, 1.0, self.n_samples) * dr.opaque(mi.Float, 1.0 / (scale * q))
        else:
            weight = dr.rcp(q * dr.opaque(mi.Float, scale))
        dr.eval(idx, tile, weight)
        o = self.options
        return PixelBatch(step, view, idx, weight, (o.width, o.height), o.n_views, full=self.pixels.raster,
                          tile=tile, view_prob=r)

    def _draw_joint(self, step: int) -> PixelBatch:
        """N samples (v_j, p_j) ~ p over the pixels of all views; w_j = 1 / (N·V·P·p(v_j, p_j)) (5.1)."""
        import drjit as dr
        import mitsuba as mi
        idx, tile, views, p = self.pixels.sample_joint(self.n_views, self._uniforms(step, self.pixels.dims + 1))
        scale = self.n_samples * self.n_pixels * self.n_views
        if isinstance(p, float):            # uniform: one weight for all samples
            weight = dr.full(mi.Float, 1.0, self.n_samples) * dr.opaque(mi.Float, 1.0 / (scale * p))
        else:
            weight = dr.rcp(p * dr.opaque(mi.Float, scale))
        dr.eval(idx, tile, views, weight)
        o = self.options
        return PixelBatch(step, None, idx, weight, (o.width, o.height), o.n_views, tile=tile, view_prob=None,
                          views=views)

    def _maybe_rebuild(self, step: int) -> None:
        """Rebuild q and r every K steps (from step K on)."""
        K = self.options.rebuild_every
        if step < K or step // K == self._last_rebuild // K:
            return
        self._last_rebuild = step
        s = self.stats.tile_statistic()
        self.views.rebuild(s, self.grid.tile_pixels)
        self.pixels.rebuild(s)
        self.stats.fade()

    def pixels_per_step(self, batch: PixelBatch | None = None) -> int:
        """Pixel samples rendered per step (N; P for ``full``)."""
        return self.n_samples if batch is None else batch.size

    # ------------------------------------------------------------------ statistics
    def observe(self, batch: PixelBatch, values, reference, tangent=None, kind: str = DEFAULT_LOSS,
                delta: float = HUBER_DELTA) -> None:
        """Record the statistic of a rendered batch in its (view, tile) cells.

        ``values``/``reference``: (N, C) tensors of the rendered and reference
        pixels. The ``gradient`` statistic needs ``tangent`` (``render_pixels_tangent``)
        when something reads it (:attr:`needs_tangent`); loss ``kind`` and ``delta``
        as in ``weighted_loss``.
        """
        if batch.tile is None:
            return
        stat = self.stats.per_sample(values, reference, tangent, kind, delta)
        if stat is None:
            if self.needs_tangent:
                raise UserError("sampler: the 'gradient' statistic needs the tangent image of the batch "
                                "(rvs_mi.sampling.render_pixels_tangent)")
            return                              # nothing reads the statistic
        self.stats.add(batch.view if batch.views is None else batch.views, batch.tile, stat)

    def tile_statistic(self) -> np.ndarray:
        """s_t per (view, tile), shape (V, T) (see ``TileStatistics.tile_statistic``)."""
        return self.stats.tile_statistic()

    def tile_probabilities(self, view: int = 0) -> np.ndarray:
        """Current per-tile mass m_t of a view (shape tiles_y × tiles_x, sums to 1)."""
        return self.pixels.tile_mass(view).reshape(self.grid.tiles_y, self.grid.tiles_x)

    def pixel_probabilities(self, view: int = 0) -> np.ndarray:
        """Current q_p of a view as an H × W array (sums to 1)."""
        return (self.pixels.tile_mass(view) / self.grid.tile_pixels)[self.grid.tile_map()]

    def view_probabilities(self) -> np.ndarray:
        """Current r_v of the views (sums to 1): with ``view_choice="all"`` the views' shares
        of the joint distribution."""
        if self.joint:
            return self.pixels.view_mass()
        return self.views.prob.copy()

    # ------------------------------------------------------------------ state
    def _layout(self) -> list:
        return [self.grid.width, self.grid.height, self.n_views, self.grid.n_tiles]

    def state_dict(self) -> dict:
        """Plain Python/NumPy state for checkpoints (JSON-friendly apart from arrays);
        ``extra`` is the pixel distribution's state."""
        return {"name": self.name, "layout": self._layout(), **self.stats.state(),
                "last_rebuild": int(self._last_rebuild), **self.views.state(), "extra": self.pixels.state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; a state of another sampler or layout is a UserError."""
        try:
            name, layout = state["name"], [int(v) for v in state["layout"]]
        except (KeyError, TypeError, ValueError):
            raise UserError("sampler: checkpoint has no valid sampler state") from None
        if name != self.name or layout != self._layout():
            raise UserError(f"sampler: checkpoint holds a {name!r} sampler for layout {layout}, "
                            f"the run asks for {self.name!r} with {self._layout()}")
        self.stats.load_state(state)
        self.views.load_state(state)
        self.pixels.load_state(state.get("extra") or {})
        self._last_rebuild = int(state["last_rebuild"])

    def __repr__(self):
        o = self.options
        return (f"PixelSampler[{self.name}, {o.width}x{o.height}, views={o.n_views}, N={self.n_samples}, "
                f"beta={o.beta}, K={o.rebuild_every}, tile={o.tile}, statistic={o.statistic}, "
                f"view_choice={o.view_choice}]")


def make_sampler(name: str, image_size, n_views: int = 1, budget=SAMPLER_DEFAULTS["budget"],
                 beta: float = SAMPLER_DEFAULTS["beta"], rebuild_every: int = SAMPLER_DEFAULTS["rebuild_every"],
                 tile: int = SAMPLER_DEFAULTS["tile"], statistic: str = SAMPLER_DEFAULTS["statistic"],
                 view_choice: str = SAMPLER_DEFAULTS["view_choice"], seed: int = 0,
                 decay: float = SAMPLER_DEFAULTS["decay"]) -> PixelSampler:
    """A pixel sampler by name (``full``, ``uniform``, ``adaptive``); see the package docstring."""
    return PixelSampler(name, SamplerOptions.check(name, image_size, n_views, budget, beta, rebuild_every, tile,
                                                   statistic, view_choice, seed, decay))
