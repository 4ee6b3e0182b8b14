"""The sampler's options: their defaults (one place, read by ``make_sampler`` and the
``[sampler]`` section of the optimize config), allowed values and checks."""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..errors import UserError

SAMPLERS = ("full", "uniform", "adaptive")
STATISTICS = ("residual", "gradient")
VIEW_CHOICES = ("uniform", "adaptive", "all")

#: Default of each sampler option (read-only).
SAMPLER_DEFAULTS = MappingProxyType({
    "budget": 0.1,            # pixel samples per step: a fraction of the image (<= 1) or a count
    "beta": 0.2,              # uniform mixing weight β of q (5.2) and of the adaptive view choice
    "rebuild_every": 10,      # K: steps between rebuilds of q and of the view probabilities
    "tile": 8,                # tile size (pixels) of the statistics
    "statistic": "residual",  # residual | gradient
    "view_choice": "uniform",  # uniform | adaptive (one view per step) | all (each sample its own view)
    "decay": 0.5,             # factor on the accumulated statistics at each rebuild
})


def check_int(name, value, lo):
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


def _choice(option, value, allowed):
    if value not in allowed:
        raise UserError(f"sampler: unknown {option} {value!r}; choose one of {', '.join(allowed)}")
    return value


def _image_size(image_size):
    try:
        w, h = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise UserError(f"sampler: image_size must be (width, height), got {image_size!r}") from None
    if w < 1 or h < 1:
        raise UserError(f"sampler: image_size must be positive, got {image_size!r}")
    return w, h


def _beta(beta):
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise UserError(f"sampler: beta must be a number in (0, 1], got {beta!r}") from None
    if not (0.0 < beta <= 1.0):
        raise UserError(f"sampler: beta must be in (0, 1], got {beta!r}")
    return beta


def _decay(decay):
    if not (0.0 <= float(decay) < 1.0):
        raise UserError(f"sampler: decay must be in [0, 1), got {decay!r}")
    return float(decay)


@dataclass(frozen=True)
class SamplerOptions:
    """Checked options of one sampler (``UserError`` with one line for a bad value)."""
    width: int
    height: int
    n_views: int
    n_samples: int
    beta: float
    rebuild_every: int
    tile: int
    statistic: str
    view_choice: str
    seed: int
    decay: float

    @classmethod
    def check(cls, name, image_size, n_views, budget, beta, rebuild_every, tile, statistic, view_choice,
              seed, decay) -> SamplerOptions:
        """Options of the sampler ``name``: ``full`` renders all P pixels whatever the budget."""
        _choice("pixel sampler", name, SAMPLERS)
        if name == "full" and view_choice == "all":
            raise UserError('sampler: view_choice "all" draws each sample\'s view; the full sampler renders '
                            'whole views (use uniform or adaptive)')
        w, h = _image_size(image_size)
        n = w * h if name == "full" else resolve_budget(budget, w * h)
        return cls(w, h, check_int("n_views", n_views, 1), n, _beta(beta),
                   check_int("rebuild_every (K)", rebuild_every, 1), check_int("tile", tile, 1),
                   _choice("statistic", statistic, STATISTICS), _choice("view_choice", view_choice, VIEW_CHOICES),
                   int(seed), _decay(decay))
