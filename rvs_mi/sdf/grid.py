"""The grid SDF source: a ``gridvolume`` evaluated as a tricubic B-spline (C², so ∇f, the warp
weights and the warp are continuous; trilinear ∇f jumps at cell faces).

A cubic B-spline with control points c takes at voxel centre i the value

    s_i = (c_{i−1} + 4 c_i + c_{i+1}) / 6                       (G1)

(taps outside the grid follow its wrap mode), so with c = the voxel values
it smooths them: a 32³ grid of a sphere's exact distance renders a sphere
0.6% too small in area. ``spline="interpolating"`` (the default) first
solves (G1) for the c whose spline passes through the voxel values, along
each axis in turn: c = B⁻¹ v with B the n×n matrix of (G1). The entries of
B⁻¹ fall off as (2 − √3)^|i−j| (0.27 per voxel), so each axis applies the
2·PREFILTER_REACH + 1 taps about the diagonal (the rest are < 1e-6 of the
diagonal): a linear map of the values, a custom AD operation whose
derivatives are the same map (forward) and its transpose (reverse). With ``clamp`` wrapping the control points
extend one voxel past each face, linearly, so a plane stays a plane up to
the faces (clamped control points would bend it there). ``spline="smoothing"`` uses the voxel
values as the control points.
"""
from __future__ import annotations

import drjit as dr
import numpy as np

from ..errors import UserError
from ..volume.placement import read_placement, wrap_index
from .sources import FADE_INNER, GRID_FADE_VOXELS, box_interval

SPLINES = ("interpolating", "smoothing")
PREFILTER_REACH = 11     # taps on each side of the diagonal of B⁻¹ (G1)


def _bspline(a):
    """Cubic B-spline weights of the four taps and their first and second derivatives."""
    b = 1.0 - a
    a2, a3 = a * a, a * a * a
    w = [b * b * b / 6.0, (3.0 * a3 - 6.0 * a2 + 4.0) / 6.0,
         (-3.0 * a3 + 3.0 * a2 + 3.0 * a + 1.0) / 6.0, a3 / 6.0]
    dw = [-0.5 * b * b, 0.5 * (3.0 * a2 - 4.0 * a), 0.5 * (-3.0 * a2 + 2.0 * a + 1.0), 0.5 * a2]
    ddw = [b, 3.0 * a - 2.0, 1.0 - 3.0 * a, a]
    return w, dw, ddw


def cubic_bspline_eval(data, res, x_local, order=1, wrap="clamp", pad=0):
    """Tricubic B-spline of a flat grid ``data`` (z-major, x fastest) at local x ∈ [0,1]³.

    Voxel centres at (i + ½)/res; taps outside the grid follow ``wrap``
    (clamp, repeat or mirror). With ``pad`` = 1, ``data`` holds control
    points −1 … res of each axis (size res + 2), and taps beyond those clamp.
    Returns (f, ∇f, H) in local units (∂/∂x_local); H is None unless
    ``order == 2``. Differentiable in data.
    """
    import drjit as dr
    import mitsuba as mi
    rx, ry, rz = res
    c = [x_local.x * rx - 0.5, x_local.y * ry - 0.5, x_local.z * rz - 0.5]
    i0 = [dr.floor(v) for v in c]
    W = [_bspline(c[k] - i0[k]) for k in range(3)]
    if pad:
        idx = [[dr.clip(mi.Int32(i0[k]) + (j - 1 + pad), 0, r + 2 * pad - 1) for j in range(4)]
               for k, r in enumerate((rx, ry, rz))]
    else:
        idx = [[wrap_index(mi.Int32(i0[k]) + (j - 1), r, wrap) for j in range(4)]
               for k, r in enumerate((rx, ry, rz))]
    sx, sy = rx + 2 * pad, ry + 2 * pad
    scale = (rx, ry, rz)
    f = dr.zeros(mi.Float, 1)
    g = [dr.zeros(mi.Float, 1) for _ in range(3)]
    h = {key: dr.zeros(mi.Float, 1) for key in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))}
    for kz in range(4):
        for ky in range(4):
            row = (idx[2][kz] * sy + idx[1][ky]) * sx
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


def _prefilter_taps(n: int, wrap: str):
    """The control points of one axis as a linear map of its n values: voxel index (rows×T int)
    and weight (rows×T) of the T = min(n, 2·PREFILTER_REACH + 1) largest-reach taps of each
    row of B⁻¹ (G1), T distinct voxels per row.

    ``repeat`` and ``mirror``: n rows, B built with the wrap mode's taps. ``clamp``: n + 2
    rows, control points −1 … n, extended linearly at both ends (c_{−1} = 2c_0 − c_1), so
    the spline reproduces linear data up to the faces; (G1) at the end voxels then reads
    s_0 = c_0.
    """
    import mitsuba as mi
    B = np.zeros((n, n))
    rows = np.arange(n)
    if wrap == "clamp":
        B[rows, rows] = 4.0 / 6.0
        B[rows[1:], rows[:-1]] = B[rows[:-1], rows[1:]] = 1.0 / 6.0
        B[0], B[-1] = np.eye(n)[0], np.eye(n)[-1]
    else:
        for offset, w in ((-1, 1.0 / 6.0), (0, 4.0 / 6.0), (1, 1.0 / 6.0)):
            cols = np.array(wrap_index(mi.Int32(rows + offset), n, wrap), dtype=np.int64)
            np.add.at(B, (rows, cols), w)
    M = np.linalg.inv(B)
    T = min(n, 2 * PREFILTER_REACH + 1)
    if wrap == "clamp":
        first = 2 * M[0] - M[1] if n > 1 else M[0]
        last = 2 * M[-1] - M[-2] if n > 1 else M[-1]
        M = np.vstack([first, M, last])
        centre = np.clip(np.arange(n + 2) - 1, 0, n - 1)
    else:
        centre = rows
    if wrap == "repeat":      # circulant: the window wraps around
        cols = (centre[:, None] - T // 2 + np.arange(T)[None, :]) % n
    else:
        start = np.clip(centre - T // 2, 0, n - T)
        cols = start[:, None] + np.arange(T)[None, :]
    return cols, M[np.arange(len(M))[:, None], cols]


class Taps:
    """The prefilter's taps of the three axes (``_prefilter_taps``) as two Dr.Jit arrays (voxel
    indices, weights), made once per grid size: arrays made from NumPy data while
    ``dr.freeze`` records a step cannot be recorded."""

    def __init__(self, res, wrap: str):
        import mitsuba as mi
        per_axis = [_prefilter_taps(n, wrap) for n in res]
        self.layout, offset = [], 0
        for cols, _ in per_axis:
            self.layout.append((offset, cols.shape[0], cols.shape[1]))
            offset += cols.size
        self.cols = mi.UInt32(np.concatenate([c.ravel() for c, _ in per_axis]).astype(np.uint32))
        self.weights = mi.Float(np.concatenate([w.ravel() for _, w in per_axis]).astype(np.float32))


def _axis_geometry(shape, axis, rows):
    """Output shape, flat output index, its position along ``axis`` and the input offset of
    its line, for one axis of the prefilter (input ``shape``, ``rows`` outputs on the axis)."""
    import drjit as dr
    import mitsuba as mi
    out = list(shape)
    out[axis] = rows
    v = dr.arange(mi.UInt32, out[0] * out[1] * out[2])
    pos = [v % out[0], (v // out[0]) % out[1], v // (out[0] * out[1])]
    stride = [1, shape[0], shape[0] * shape[1]]
    base = sum(pos[b] * stride[b] for b in range(3) if b != axis)
    return out, pos[axis], base, stride[axis]


def _filter(data, res, taps: Taps, transpose: bool = False):
    """The prefilter's linear map (control points of ``data``), or its transpose (from the
    control points' adjoint back to the values')."""
    import drjit as dr
    import mitsuba as mi
    shapes = [list(res)]
    for axis, (_, rows, _) in enumerate(taps.layout):
        shapes.append(shapes[-1][:axis] + [rows] + shapes[-1][axis + 1:])
    order = reversed(range(3)) if transpose else range(3)
    for axis in order:
        offset, rows, T = taps.layout[axis]
        out, pos, base, stride = _axis_geometry(shapes[axis], axis, rows)
        n_in = shapes[axis][0] * shapes[axis][1] * shapes[axis][2]
        acc = dr.zeros(mi.Float, n_in if transpose else dr.width(pos))
        for k in range(T):
            tap = offset + pos * T + k
            src = base + dr.gather(mi.UInt32, taps.cols, tap) * stride
            w = dr.gather(mi.Float, taps.weights, tap)
            if transpose:
                dr.scatter_reduce(dr.ReduceOp.Add, acc, w * data, src)
            else:
                acc += w * dr.gather(mi.Float, data, src)
        data = acc
        dr.eval(data)
    return data


def prefilter(data, res, taps: Taps):
    """Control points of the flat grid ``data`` (z-major, x fastest; ``res`` = (x, y, z)) whose
    tricubic B-spline interpolates it: (G1) solved along x, y, then z with ``taps`` (with
    ``clamp`` wrapping, res + 2 control points per axis). A custom AD operation: its
    derivatives are the same map (forward) and its transpose (reverse), evaluated as whole
    arrays, so that the kernels that gather from the control points read stored tangents
    rather than recompute them."""
    return dr.custom(PrefilterOp, data, res, taps)


class PrefilterOp(dr.CustomOp):
    """``prefilter`` as a Dr.Jit custom operation."""

    def eval(self, data, res, taps):
        self.res, self.taps = res, taps
        return _filter(data, res, taps)

    def forward(self):
        self.set_grad_out(_filter(self.grad_in("data"), self.res, self.taps))

    def backward(self):
        self.set_grad_in("data", _filter(self.grad_out(), self.res, self.taps, transpose=True))

    def name(self):
        return "sdf_grid_prefilter"


class GridSDF:
    """SDF stored in a Mitsuba ``gridvolume`` (values in world units), tricubic B-spline.

    The grid follows the volume's ``to_world`` (any affine map) and
    ``wrap_mode``, read back by :func:`rvs_mi.volume.placement.read_placement`;
    ``filter_type="nearest"`` is refused (a B-spline has no nearest mode, and a
    piecewise-constant SDF has no surface normal). With local coordinates
    u = A·x + b: ∇f = Aᵀ ∇ᵤf and H = Aᵀ Hᵤ A. Its data is the traversal key
    ``sdf.data``; values must be finite. ``spline``: ``interpolating`` (the
    spline passes through the voxel values) or ``smoothing`` (the values are
    its control points); see the module docstring.
    """

    def __init__(self, volume, spline: str = "interpolating"):
        import mitsuba as mi
        if spline not in SPLINES:
            raise UserError(f"sdf_spline must be interpolating or smoothing (got {spline!r})")
        self.spline = spline
        self.coefficients = None      # set on the copies made by evaluator()
        self.volume = volume
        placement = read_placement(volume, "sdf")
        if placement.filter_type != "trilinear":
            raise UserError('the sdf gridvolume is evaluated as a cubic B-spline; '
                            'filter_type="nearest" is not supported')
        self.wrap = placement.wrap_mode
        self.A = placement.to_local[:3, :3]
        self._half_diagonal = 0.5 * float(np.linalg.norm(np.linalg.solve(self.A, np.ones(3))))
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
        res = (shape[2], shape[1], shape[0])
        if self.spline == "interpolating" and getattr(self, "res", None) != res:
            taps = Taps(res, self.wrap)
            self._tap_cols, self._tap_weights = taps.cols, taps.weights   # (seen by dr.freeze)
            self._taps = taps
        self.res = res

    def traverse(self, cb):
        import mitsuba as mi
        cb.put("sdf", self.volume, mi.ParamFlags.Differentiable)

    def interval(self, o, d, do, dd):
        """The ray's segment in the grid's box, found in local coordinates (same t)."""
        import mitsuba as mi
        T = self.to_local
        local = [T @ mi.Vector3f(v) for v in do], [T @ mi.Vector3f(v) for v in dd]
        return box_interval([0.0] * 3, [1.0] * 3, T @ mi.Point3f(o), T @ mi.Vector3f(d), *local)

    def extent_radius(self):
        """Half the diagonal of the grid's box in world units (a Dr.Jit Float): the size the
        hit threshold is relative to."""
        import drjit as dr
        import mitsuba as mi
        return dr.opaque(mi.Float, self._half_diagonal)

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

    def control_points(self):
        """The spline's control points (flat): the prefiltered values, or the values."""
        if self.coefficients is not None:
            return self.coefficients
        if self.spline == "smoothing":
            return self.data.array
        return prefilter(self.data.array, self.res, self._taps)

    @property
    def _pad(self) -> int:
        """1 where the control points extend one voxel past each face (interpolating, clamp)."""
        return int(self.spline == "interpolating" and self.wrap == "clamp")

    def evaluator(self) -> "GridSDF":
        """A copy whose evaluations share one computation of the control points (one render:
        the prefilter then runs once, not once per ``eval``); such a copy returns itself."""
        import copy
        if self.coefficients is not None:
            return self
        bound = copy.copy(self)
        bound.coefficients = self.control_points()
        dr.eval(bound.coefficients)      # once, not within each kernel that gathers from it
        return bound

    def eval(self, x, order=1):
        import mitsuba as mi
        xl = self.to_local @ mi.Point3f(x)
        f, g, H = cubic_bspline_eval(self.control_points(), self.res, xl, order, self.wrap, self._pad)
        At = mi.Matrix3f(self.A.T.tolist())
        g = At @ g                                   # ∇f = Aᵀ ∇ᵤf
        if order < 2:
            return f, g
        return f, g, At @ H @ mi.Matrix3f(self.A.tolist())
