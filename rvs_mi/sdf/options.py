"""Options of ``sdf_reparam`` / ``sdf_naive``: each property's default and check, defined once.

The fields are the integrators' XML properties of the same names, plus
``warp`` (on for ``sdf_reparam``, off for ``sdf_naive``). ``epsilon`` pads
S = |f| + λ_d|∇f·d| + ε (Eq. 11): small with all points; a top-k subset's
shifted weights (Eq. 14) need a larger one to stay stable where tracer points
cluster, hence two defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import UserError

SHADINGS = ("emissive", "diffuse")
EPSILON_ALL = 1e-3      # default epsilon with top_k = 0
EPSILON_TOP_K = 2e-2    # default epsilon with top_k >= 2

# (field, type, test, the rule a bad value breaks), checked in this order
_RULES = (
    ("gamma", float, lambda v: v > 2, "> 2"),
    ("lambda_d", float, lambda v: v > 0, "> 0"),
    ("top_k", int, lambda v: v == 0 or v >= 2, "0 (all points) or >= 2"),
    ("epsilon", float, lambda v: v > 0, "> 0"),
    ("max_steps", int, lambda v: v >= 1, ">= 1"),
    ("hit_epsilon", float, lambda v: 0 < v <= 0.1, "in (0, 0.1]"),
    ("shading", str, lambda v: v in SHADINGS, "emissive or diffuse"),
    ("emitter_samples", int, lambda v: v >= 1, ">= 1"),
)


def _typed(name, value, kind):
    """``value`` as ``kind``: integers must be integral, numbers finite, strings strings."""
    import math
    import numbers
    if kind is str:
        if not isinstance(value, str):
            raise UserError(f"{name} must be a string (got {value!r})")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{name} must be {'an integer' if kind is int else 'a number'} (got {value!r})")
    if not math.isfinite(value):
        raise UserError(f"{name} must be finite (got {value})")
    if kind is int:
        if value != int(value):
            raise UserError(f"{name} must be an integer (got {value})")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class SDFOptions:
    """Settings of the SDF renderer (values converted to their types and checked on creation)."""
    gamma: float = 3.0          # weight exponent γ, w = S^(−γ) (Eq. 12)
    lambda_d: float = 0.1       # λ_d of S (Eq. 11)
    top_k: int = 0              # 0: every tracer point; k ≥ 2: the k largest weights (Eq. 14)
    epsilon: float | None = None    # ε of S; None: EPSILON_ALL or EPSILON_TOP_K by top_k
    max_steps: int = 64         # sphere-tracing points per ray
    hit_epsilon: float = 1e-3   # traced f + τ converged below τ = hit_epsilon · extent radius
    shading: str = "emissive"   # emissive: L = albedo; diffuse: Lambertian, emitter sampling
    emitter_samples: int = 1    # emitter samples per shaded point (diffuse), averaged
    warp: bool = True           # boundary warp (sdf_reparam) or plain AD (sdf_naive)

    def __post_init__(self):
        for name, kind, ok, rule in _RULES:
            value = getattr(self, name)
            if name == "epsilon" and value is None:
                value = EPSILON_ALL if self.top_k == 0 else EPSILON_TOP_K
            value = _typed(name, value, kind)
            object.__setattr__(self, name, value)
            if not ok(value):
                shown = repr(value) if kind is str else value
                raise UserError(f"{name} must be {rule} (got {shown})")
        if not isinstance(self.warp, bool):
            raise UserError(f"warp must be true or false (got {self.warp!r})")

    @classmethod
    def from_properties(cls, props, warp: bool) -> "SDFOptions":
        """The options given in Mitsuba ``props`` (the rest at their defaults), each read
        with its Mitsuba property type checked (``rvs_mi.scene.prop``)."""
        from ..scene import prop
        kinds = {name: kind for name, kind, _, _ in _RULES}
        given = {f.name: prop(props, f.name, kinds[f.name]) for f in fields(cls)
                 if f.name != "warp" and f.name in props}
        return cls(warp=warp, **given)

    def streams(self, use_warp: bool) -> bool:
        """Whether the warp over all tracer points is summed while tracing (nothing recorded)."""
        return use_warp and (self.top_k == 0 or self.top_k >= self.max_steps)
