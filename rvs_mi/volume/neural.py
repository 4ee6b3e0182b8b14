"""Neural density and radiance fields for the volume integrators (``drjit.nn``).

A multiresolution hash-grid encoding (Müller et al. 2022) of the point, in the
box of the integrator's density field, feeds two MLPs (Morozov et al. 2024, Sec. 5.2):

* density: a *shallow* head, one hidden layer, σ_raw = MLP_σ(enc(x)), then the
  integrator's ``density_activation``. RVS evaluates it at every knot, so it
  must be cheap;
* radiance: a deeper head, RGB = MLP_c(enc(x)), evaluated only at the few RVS
  samples.

Both heads share the encoding. Everything is float32 (exact Adam state in
checkpoints). Parameters appear in ``mi.traverse`` as
``<id>.density.encoding``, ``<id>.density.weights`` and ``<id>.radiance.weights``
(flat, differentiable), so ``rvs-mi optimize`` and ``mi.ad.Adam`` train them
like any other scene parameter. Attach from Python, after loading the scene::

    integrator = scene.integrator()
    rvs_mi.volume.neural.attach_neural_fields(integrator, hidden=32, seed=0)
    params = mi.traverse(scene)
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from ..checks import integer, number
from ..errors import UserError
from ..workarounds import mlp_without_bias
from .fields import unit_box_interval

MAX_HASHMAP_LOG2 = 26                  # 2^26 entries per level is already 0.5 GB of features
DEFAULTS = {"levels": 8, "features": 2, "hashmap_log2": 14, "base_resolution": 4,
            "per_level_scale": 1.5, "hidden": 32, "density_hidden": 16, "seed": 0,
            "density_bias": -1.0}


class NeuralField:
    """A field (the ``GridField`` interface: ``eval``, ``interval``, ``traverse``) as an MLP."""

    is_grid = False

    def __init__(self, name: str, encoding, to_local, net, channels: int, owns_encoding: bool,
                 bias: float = 0.0):
        self.name = name
        self.encoding = encoding
        self.to_local = mi.Transform4f(to_local)
        self.net = net
        self._channels = channels
        self.owns_encoding = owns_encoding
        self.bias = bias

    @property
    def channels(self) -> int:
        return self._channels

    def refresh(self):
        with dr.suspend_grad():
            arrays = [self.net["weights"]] + ([self.encoding.data] if self.owns_encoding else [])
            finite = all(bool(dr.all(dr.isfinite(a), axis=None)) for a in arrays)
        if not finite:
            raise UserError(f"{self.name} network parameters contain non-finite values (NaN or inf)")

    def eval(self, p, active=True):
        import drjit.nn as nn
        x = dr.clip(self.to_local @ p, 0.0, 1.0)
        features = list(self.encoding(x)) + [dr.full(mi.Float, 1.0, dr.width(x))]
        out = self.net(nn.CoopVec(features))
        return [mi.Float(c) + self.bias for c in out]

    def interval(self, ray):
        return unit_box_interval(self.to_local, ray)

    def traverse(self, callback, prefix):
        D = mi.ParamFlags.Differentiable
        if self.owns_encoding:
            callback.put(f"{prefix}.encoding", self.encoding.data, D)
        callback.put(f"{prefix}.weights", self.net["weights"], D)


def attach_neural_fields(integrator, **options) -> dict:
    """Replace the density and radiance fields of a volume integrator by neural fields.

    The box is the one of the integrator's current density field. Options (see
    ``DEFAULTS``): ``levels``, ``features`` (per level), ``hashmap_log2``,
    ``base_resolution``, ``per_level_scale`` (hash grid), ``hidden`` (width of
    the radiance head's two hidden layers), ``density_hidden`` (the density
    head's single hidden layer), ``seed``, ``density_bias`` (added to σ_raw, so
    training starts from a thin medium). Returns the options used.
    """
    import drjit.nn as nn
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise UserError("unknown neural field option(s): " + ", ".join(sorted(unknown))
                        + "; valid: " + ", ".join(DEFAULTS))
    opts = {**DEFAULTS, **options}
    for key in ("levels", "features", "base_resolution", "hidden", "density_hidden"):
        opts[key] = integer(f"neural field option {key}", opts[key], 1)
    opts["hashmap_log2"] = integer("neural field option hashmap_log2", opts["hashmap_log2"], 1, MAX_HASHMAP_LOG2)
    opts["seed"] = integer("neural field option seed", opts["seed"], 0)
    opts["per_level_scale"] = number("neural field option per_level_scale", opts["per_level_scale"], 1.0)
    opts["density_bias"] = number("neural field option density_bias", opts["density_bias"])
    fields = getattr(integrator, "fields", None)
    if fields is None or "density" not in fields():
        raise UserError(f"{type(integrator).__name__} is not a volume integrator (rvs, rvs_hier, volquad)")
    density = integrator.density
    to_local = density.to_local if hasattr(density, "to_local") else None
    if to_local is None:
        raise UserError("neural fields need a gridvolume density child to define the box")
    rng = dr.rng(seed=int(opts["seed"]))
    encoding = nn.HashGridEncoding(mi.Float, 3, n_levels=int(opts["levels"]),
                                   n_features_per_level=int(opts["features"]),
                                   hashmap_size=2 ** int(opts["hashmap_log2"]),
                                   base_resolution=int(opts["base_resolution"]),
                                   per_level_scale=float(opts["per_level_scale"]), rng=rng)
    n_in = int(opts["levels"]) * int(opts["features"])
    sigma_net = mlp_without_bias(n_in, [int(opts["density_hidden"])], 1, rng)
    colour_net = mlp_without_bias(n_in, [int(opts["hidden"])] * 2, 3, rng)
    integrator.density = NeuralField("density", encoding, to_local, sigma_net, 1, True,
                                     bias=float(opts["density_bias"]))
    integrator.radiance = NeuralField("radiance", encoding, to_local, colour_net, 3, False, bias=0.5)
    if getattr(integrator, "coarse", None) is not None:
        integrator.coarse = None        # rvs_hier: the coarse spline uses the neural density
    return opts
