"""Trilinear interpolation of a Z×Y×X×C grid tensor by direct gathers.

The same values as ``mi.Texture3f(data, filter_mode=Linear, wrap_mode=...)``
(voxel centres at (i + ½)/n, ``clamp`` or ``repeat`` wrapping), computed from
the tensor itself: eight corner indices per point, one gather per corner and
channel. The reverse pass therefore scatters straight into the gradient of
``data``; a texture keeps a channel-padded copy of it (27 SH channels become 32),
whose adjoint is a second scatter over the whole grid on every backward pass.

For a point with local coordinates u ∈ ℝ³ and n_k voxels along axis k:

    x_k = u_k·n_k − ½,  i_k = ⌊x_k⌋,  f_k = x_k − i_k                       (1)
    v(u) = Σ_{a,b,c ∈ {0,1}} w_a(f_z) w_b(f_y) w_c(f_x) · g[i_z+a, i_y+b, i_x+c]   (2)

with w_0(f) = 1 − f, w_1(f) = f and indices wrapped into [0, n_k) (clamped or
taken modulo n_k). The weights are differentiable in u, so gradients reach the
positions too.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .placement import wrap_index

WRAPS = ("clamp", "repeat")


def trilinear(data, u, wrap: str = "clamp", active=True) -> list:
    """Values of grid tensor ``data`` (Z, Y, X, C) at local points ``u`` (Eq. 1–2), one Float per channel."""
    Z, Y, X, C = (int(s) for s in data.shape)
    flat = data.array
    corners = []
    for coord, n in ((u.z, Z), (u.y, Y), (u.x, X)):
        x = dr.fma(coord, n, -0.5)
        i0 = dr.floor(x)
        f = x - i0
        i0 = mi.Int32(i0)
        corners.append(((wrap_index(i0, n, wrap), 1 - f), (wrap_index(i0 + 1, n, wrap), f)))
    out = [mi.Float(0)] * C
    for iz, wz in corners[0]:
        for iy, wy in corners[1]:
            row = (iz * Y + iy) * X
            wzy = wz * wy
            for ix, wx in corners[2]:
                base = mi.UInt32((row + ix) * C)
                w = wzy * wx
                for c in range(C):
                    out[c] = dr.fma(w, dr.gather(mi.Float, flat, base + c, active), out[c])
    return out
