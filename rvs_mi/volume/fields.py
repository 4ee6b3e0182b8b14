"""Density and radiance fields of the volume integrators (Mitsuba ``volume`` children).

A ``gridvolume`` child is taken over as a :class:`GridField`: its tensor becomes
the integrator's differentiable parameter ``<integrator id>.<name>.data`` (so it
can be replaced, also by a grid of another resolution, through
``params.update()``; Mitsuba's own gridvolume refuses updates to other than 1, 3
or 6 channels) and is evaluated with the child's ``to_world``, ``filter_type``
and ``wrap_mode`` (read back by :mod:`.placement`): trilinear grids with
``clamp`` or ``repeat`` wrapping by :func:`.trilinear.trilinear` (gathers from
the tensor itself), others by a ``mi.Texture3f`` with ``use_accel=False``; so
values equal the gridvolume's own and gradients are exact. Grid values must be
finite with |v| ≤ MAX_VALUE (larger ones overflow float32 in sums and squared losses). Any other volume plugin is
wrapped as a :class:`VolumeField` and evaluated through ``Volume.eval*``; its
own parameters appear under ``<integrator id>.<name>.…``.

Radiance: 3 channels = RGB; 12 or 27 channels = real spherical harmonics of
degree 1 or 2 (``dr.sh_eval`` basis), channel 3·j + c holding coefficient j of
colour c, evaluated at the ray direction d (NeRF's c(x, d)), then passed through the
integrator's ``radiance_activation`` (:func:`activate_radiance`; default
``none``: radiance is linear in the grid values, as written).
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from ..errors import UserError
from .placement import Placement, read_placement
from .spline import SIGMA_MAX
from .trilinear import WRAPS as DIRECT_WRAPS
from .trilinear import trilinear

ACTIVATIONS = ("none", "relu", "softplus", "exp")
RADIANCE_ACTIVATIONS = ("none", "relu", "clamp", "sigmoid")
RADIANCE_CHANNELS = {3: None, 12: 1, 27: 2}      # channels -> SH degree (None = RGB)
MAX_VALUE = 1e15                                  # largest |grid value| accepted


def check_activation(name: str, kind: str = "density") -> str:
    allowed = ACTIVATIONS if kind == "density" else RADIANCE_ACTIVATIONS
    if name not in allowed:
        raise UserError(f"unknown {kind}_activation {name!r}; use one of: " + ", ".join(allowed))
    return name


def activate(raw, name: str):
    """σ = activation(raw) ≥ 0, capped at ``SIGMA_MAX``.

    ``none`` clamps negative grid values to 0 (an interpolated density can dip
    below zero between a positive and a negative voxel; the spline needs σ ≥ 0),
    so it behaves like ``relu`` on the interpolated value. ``softplus`` is
    log(1 + eˣ) computed as max(x, 0) + log(1 + e^{−|x|}).
    """
    if name in ("none", "relu"):
        sigma = dr.maximum(raw, 0)
    elif name == "softplus":
        sigma = dr.maximum(raw, 0) + dr.log(1 + dr.exp(-dr.abs(raw)))
    elif name == "exp":
        sigma = dr.exp(dr.minimum(raw, 13.8))       # e^13.8 ≈ 1e6
    else:
        raise UserError(f"unknown density_activation {name!r}")
    return dr.minimum(sigma, SIGMA_MAX)


def activate_radiance(rgb, name: str):
    """c = activation(raw) per colour channel.

    ``none``: raw (radiance as written, may be negative); ``relu``: max(raw, 0);
    ``clamp``: raw clipped to [0, 1] (zero gradient outside); ``sigmoid``:
    1 / (1 + e^{−raw}) in (0, 1), smooth everywhere (raw 0 → 0.5). For
    reconstructions from 8-bit images, whose linear radiance lies in [0, 1],
    ``sigmoid`` keeps every render a valid colour while all grid values still
    receive gradients.
    """
    if name == "none":
        return rgb
    if name == "relu":
        return [dr.maximum(c, 0) for c in rgb]
    if name == "clamp":
        return [dr.clip(c, 0, 1) for c in rgb]
    if name == "sigmoid":
        return [dr.rcp(1 + dr.exp(-dr.clip(c, -30, 30))) for c in rgb]
    raise UserError(f"unknown radiance_activation {name!r}")


def radiance_rgb(channels, d):
    """RGB radiance from field channels (3: RGB; 12/27: SH degree 1/2 at direction ``d``)."""
    n = len(channels)
    degree = RADIANCE_CHANNELS.get(n)
    if n == 3:
        return list(channels)
    if degree is None:
        raise UserError(f"radiance needs 3, 12 or 27 channels (got {n})")
    basis = dr.sh_eval(d, degree)
    rgb = [0, 0, 0]
    for j, y in enumerate(basis):
        for c in range(3):
            rgb[c] = dr.fma(y, channels[3 * j + c], rgb[c]) if j else y * channels[3 * j + c]
    return rgb


def unit_box_interval(to_local, ray):
    """(hit, t0, t1) of ``ray`` with the box that ``to_local`` maps to [0, 1]³."""
    o = to_local @ ray.o
    d = to_local @ ray.d
    box = mi.BoundingBox3f(mi.ScalarPoint3f(0.0), mi.ScalarPoint3f(1.0))
    return box.ray_intersect(mi.Ray3f(o, d))[:3]


class GridField:
    """A trilinear grid field owned by the integrator (differentiable tensor ``data``)."""

    is_grid = True

    def __init__(self, name: str, data, placement: Placement, allowed: tuple[int, ...]):
        self.name = name
        self.allowed = allowed
        self.placement = placement
        self.to_local = mi.Transform4f(placement.transform)
        self.data = mi.TensorXf(data)
        self.tex = None
        self._built_from = None
        self.refresh()

    @classmethod
    def from_volume(cls, name, volume, allowed):
        params = mi.traverse(volume)
        return cls(name, params["data"], read_placement(volume, name), allowed)

    def check(self):
        shape = tuple(self.data.shape)
        if len(shape) != 4 or min(shape) < 1:
            raise UserError(f"{self.name}.data must be a 4-D tensor (Z, Y, X, channels), got shape {shape}")
        if shape[3] not in self.allowed:
            raise UserError(f"{self.name} grid has {shape[3]} channels; expected "
                            + " or ".join(str(a) for a in self.allowed))
        with dr.suspend_grad():
            values = self.data.array
            if bool(dr.all(dr.isfinite(values) & (dr.abs(values) <= MAX_VALUE), axis=None)[0]):
                return                  # one fused pass in the common case
            finite = bool(dr.all(dr.isfinite(values), axis=None)[0])
            largest = float(dr.max(dr.abs(values), axis=None)[0]) if finite else 0.0
        if not finite:
            raise UserError(f"{self.name} grid contains non-finite values (NaN or inf)")
        raise UserError(f"{self.name} grid has a value of magnitude {largest:.3g}; "
                        f"values must be at most {MAX_VALUE:.0e}")

    def _identity(self):
        return (self.data.array.index, self.data.array.index_ad, tuple(self.data.shape))

    @property
    def direct(self) -> bool:
        """Trilinear with clamp/repeat wrapping: evaluated by :func:`.trilinear.trilinear` on
        ``data`` itself (no texture copy); other modes go through a ``mi.Texture3f``."""
        return self.placement.filter_type == "trilinear" and self.placement.wrap_mode in DIRECT_WRAPS

    def refresh(self):
        """Check ``data`` after it changed (any resolution), and rebuild the texture of a
        field that needs one; no-op if unchanged."""
        if self._built_from == self._identity():
            return
        self.check()
        # A new texture each time: it holds exactly the tensor that carries the
        # AD graph of the current parameters, whatever its shape.
        self.tex = None if self.direct else self.placement.texture(self.data)
        self._built_from = self._identity()

    @property
    def channels(self) -> int:
        return int(self.data.shape[3])

    def eval(self, p, active=True):
        u = self.to_local @ p
        if self.tex is None:
            return trilinear(self.data, u, self.placement.wrap_mode, active)
        return self.tex.eval(u, active)

    def interval(self, ray):
        """(hit, t0, t1) of the ray with the grid's box (t0 may be negative)."""
        return unit_box_interval(self.to_local, ray)

    def traverse(self, callback, prefix):
        callback.put(f"{prefix}.data", self.data, mi.ParamFlags.Differentiable)


class VolumeField:
    """Any other Mitsuba volume plugin, evaluated through ``Volume.eval*``."""

    is_grid = False

    def __init__(self, name: str, volume, allowed):
        self.name, self.volume, self.allowed = name, volume, allowed
        n = volume.channel_count()
        if n not in allowed:
            raise UserError(f"{name} volume has {n} channels; expected " + " or ".join(str(a) for a in allowed))

    @property
    def channels(self) -> int:
        return int(self.volume.channel_count())

    def refresh(self):
        pass


    def eval(self, p, active=True):
        it = dr.zeros(mi.Interaction3f)
        it.p = p
        n = self.channels
        if n == 1:
            return [self.volume.eval_1(it, active)]
        if n == 3:
            c = self.volume.eval(it, active)
            return [c[0], c[1], c[2]]
        return list(self.volume.eval_n(it, active))

    def interval(self, ray):
        return self.volume.bbox().ray_intersect(mi.Ray3f(ray.o, ray.d))[:3]

    def traverse(self, callback, prefix):
        callback.put(prefix, self.volume, mi.ParamFlags.Differentiable)


def make_field(name: str, volume, allowed):
    """Wrap a ``volume`` child; ``None`` -> UserError (the child is required)."""
    if volume is None:
        raise UserError(f'missing <volume name="{name}"> child')
    if not isinstance(volume, mi.Volume):
        raise UserError(f'"{name}" must be a volume plugin (got {type(volume).__name__})')
    params = mi.traverse(volume)
    if "data" in params.keys() and isinstance(params["data"], mi.TensorXf):
        return GridField.from_volume(name, volume, allowed)
    return VolumeField(name, volume, allowed)
