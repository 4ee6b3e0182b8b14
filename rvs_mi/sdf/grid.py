"""The grid SDF source: a ``gridvolume`` evaluated as a tricubic B-spline (C², so ∇f, the warp
weights and the warp are continuous; trilinear ∇f jumps at cell faces)."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..volume.placement import read_placement, wrap_index
from .sources import FADE_INNER, GRID_FADE_VOXELS, box_interval


def _bspline(a):
    """Cubic B-spline weights of the four taps and their first and second derivatives."""
    b = 1.0 - a
    a2, a3 = a * a, a * a * a
    w = [b * b * b / 6.0, (3.0 * a3 - 6.0 * a2 + 4.0) / 6.0,
         (-3.0 * a3 + 3.0 * a2 + 3.0 * a + 1.0) / 6.0, a3 / 6.0]
    dw = [-0.5 * b * b, 0.5 * (3.0 * a2 - 4.0 * a), 0.5 * (-3.0 * a2 + 2.0 * a + 1.0), 0.5 * a2]
    ddw = [b, 3.0 * a - 2.0, 1.0 - 3.0 * a, a]
    return w, dw, ddw


def cubic_bspline_eval(data, res, x_local, order=1, wrap="clamp"):
    """Tricubic B-spline of a flat grid ``data`` (z-major, x fastest) at local x ∈ [0,1]³.

    Voxel centres at (i + ½)/res; taps outside the grid follow ``wrap``
    (clamp, repeat or mirror). Returns (f, ∇f, H) in local units
    (∂/∂x_local); H is None unless ``order == 2``. Differentiable in data.
    """
    import drjit as dr
    import mitsuba as mi
    rx, ry, rz = res
    c = [x_local.x * rx - 0.5, x_local.y * ry - 0.5, x_local.z * rz - 0.5]
    i0 = [dr.floor(v) for v in c]
    W = [_bspline(c[k] - i0[k]) for k in range(3)]
    idx = [[wrap_index(mi.Int32(i0[k]) + (j - 1), r, wrap) for j in range(4)]
           for k, r in enumerate((rx, ry, rz))]
    scale = (rx, ry, rz)
    f = dr.zeros(mi.Float, 1)
    g = [dr.zeros(mi.Float, 1) for _ in range(3)]
    h = {key: dr.zeros(mi.Float, 1) for key in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))}
    for kz in range(4):
        for ky in range(4):
            row = (idx[2][kz] * ry + idx[1][ky]) * rx
            wyz = W[1][0][ky] * W[2][0][kz]
            for kx in range(4):
                v = dr.gather(mi.Float, data, mi.UInt32(row + idx[0][kx]))
                wx = W[0][0][kx]
                f += wx * wyz * v
                if order >= 1:
                    dwx, dwy, dwz = W[0][1][kx], W[1][1][ky], W[2][1][kz]
                    g[0] += dwx * wyz * v
                    g[1] += wx * dwy * W[2][0][kz] * v
                    g[2] += wx * W[1][0][ky] * dwz * v
                if order >= 2:
                    h[(0, 0)] += W[0][2][kx] * wyz * v
                    h[(1, 1)] += wx * W[1][2][ky] * W[2][0][kz] * v
                    h[(2, 2)] += wx * W[1][0][ky] * W[2][2][kz] * v
                    h[(0, 1)] += dwx * dwy * W[2][0][kz] * v
                    h[(0, 2)] += dwx * W[1][0][ky] * dwz * v
                    h[(1, 2)] += wx * dwy * dwz * v
    grad = mi.Vector3f(g[0] * scale[0], g[1] * scale[1], g[2] * scale[2])
    if order < 2:
        return f, grad, None

    def hv(a, b):
        key = (min(a, b), max(a, b))
        return h[key] * scale[a] * scale[b]
    H = mi.Matrix3f(hv(0, 0), hv(0, 1), hv(0, 2), hv(1, 0), hv(1, 1), hv(1, 2),
                    hv(2, 0), hv(2, 1), hv(2, 2))
    return f, grad, H


class GridSDF:
    """SDF stored in a Mitsuba ``gridvolume`` (values in world units), tricubic B-spline.

    The grid follows the volume's ``to_world`` (any affine map) and
    ``wrap_mode``, read back by :func:`rvs_mi.volume.placement.read_placement`;
    ``filter_type="nearest"`` is refused (a B-spline has no nearest mode, and a
    piecewise-constant SDF has no surface normal). With local coordinates
    u = A·x + b: ∇f = Aᵀ ∇ᵤf and H = Aᵀ Hᵤ A. Its data is the traversal key
    ``sdf.data``; values must be finite.
    """

    def __init__(self, volume):
        import mitsuba as mi
        self.volume = volume
        placement = read_placement(volume, "sdf")
        if placement.filter_type != "trilinear":
            raise UserError('the sdf gridvolume is evaluated as a cubic B-spline; '
                            'filter_type="nearest" is not supported')
        self.wrap = placement.wrap_mode
        self.A = placement.to_local[:3, :3]
        self.to_local = mi.Transform4f(placement.transform)
        self.parameters_changed()

    def parameters_changed(self):
        import drjit as dr
        import mitsuba as mi
        params = mi.traverse(self.volume)
        if "data" not in params.keys():
            raise UserError("the sdf volume has no 'data' grid (use type=\"gridvolume\")")
        data = params["data"]
        shape = dr.shape(data)
        if len(shape) != 4 or shape[3] != 1:
            raise UserError(f"the sdf grid must have 1 channel (got shape {shape})")
        with dr.suspend_grad():
            finite = bool(dr.all(dr.isfinite(data.array), axis=None))
        if not finite:
            raise UserError("the sdf grid contains non-finite values (NaN or inf)")
        self.data = data
        self.res = (shape[2], shape[1], shape[0])

    def traverse(self, cb):
        import mitsuba as mi
        cb.put("sdf", self.volume, mi.ParamFlags.Differentiable)

    def interval(self, o, d, do, dd):
        """The ray's segment in the grid's box, found in local coordinates (same t)."""
        import mitsuba as mi
        T = self.to_local
        local = [T @ mi.Vector3f(v) for v in do], [T @ mi.Vector3f(v) for v in dd]
        return box_interval([0.0] * 3, [1.0] * 3, T @ mi.Point3f(o), T @ mi.Vector3f(d), *local)

    def fade_range(self):
        """(a, b) of the warp's free-space fade (``warp.fade``): b = GRID_FADE_VOXELS
        voxels (the smallest world distance between voxel planes, 1/(res_k·|a_k|)).
        The fade reaches 0 at the box's silhouette only where the surface keeps ≥ b
        from the box faces."""
        import drjit as dr
        import mitsuba as mi
        spacing = min(1.0 / (self.res[k] * float(np.linalg.norm(self.A[k]))) for k in range(3))
        b = GRID_FADE_VOXELS * spacing
        return dr.opaque(mi.Float, FADE_INNER * b), dr.opaque(mi.Float, b)

    def eval(self, x, order=1):
        import mitsuba as mi
        xl = self.to_local @ mi.Point3f(x)
        f, g, H = cubic_bspline_eval(self.data.array, self.res, xl, order, self.wrap)
        At = mi.Matrix3f(self.A.T.tolist())
        g = At @ g                                   # ∇f = Aᵀ ∇ᵤf
        if order < 2:
            return f, g
        return f, g, At @ H @ mi.Matrix3f(self.A.tolist())
