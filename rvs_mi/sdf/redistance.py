"""Redistancing of SDF grids: make |∇f| = 1 again while keeping the zero level set.

Gradient steps on an SDF grid leave a function whose zero set is right but
whose values drift away from distances, which slows sphere tracing and skews
the warp's harmonic weights. ``redistance`` rebuilds distances in two stages
(NumPy, voxel units scaled by the grid spacing):

1. **Interface band.** For each voxel with a sign change towards a neighbour
   along axis a, the crossing lies at the linear-interpolation distance
   d_a = h_a·f_i / (f_i − f_j); the distance to the locally planar surface is
   d = (Σ_a d_a⁻²)^(−1/2). These values stay fixed.
2. **Eikonal fill.** Elsewhere |∇d| = 1 is solved with the Godunov upwind
   scheme (the 3-D quadratic of the fast sweeping / fast marching methods),
   iterated in Jacobi form over the whole grid until nothing changes.

The sign of the input is kept, so the zero set only moves within the voxels it
crosses (by the linearisation error).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def _band(phi: np.ndarray, h) -> np.ndarray:
    """Distances of voxels next to the interface (inf elsewhere)."""
    inv_sq = np.zeros_like(phi)
    for axis in range(3):
        a = np.moveaxis(phi, axis, 0)
        out = np.moveaxis(inv_sq, axis, 0)
        lo, hi = a[:-1], a[1:]
        cross = (lo * hi) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            d_lo = h[axis] * lo / (lo - hi)          # from the lower voxel to the crossing
            d_hi = h[axis] * hi / (hi - lo)
        d_lo = np.where(cross, np.maximum(np.abs(d_lo), 1e-6 * h[axis]), np.inf)
        d_hi = np.where(cross, np.maximum(np.abs(d_hi), 1e-6 * h[axis]), np.inf)
        # The nearest crossing per voxel and axis (a voxel can have one on each side).
        best = np.full_like(a, np.inf)
        best[:-1] = np.minimum(best[:-1], d_lo)
        best[1:] = np.minimum(best[1:], d_hi)
        out += np.where(np.isfinite(best), 1.0 / np.square(best), 0.0)
    with np.errstate(divide="ignore"):
        return np.where(inv_sq > 0, 1.0 / np.sqrt(inv_sq), np.inf)


def _godunov(d: np.ndarray, h, fixed: np.ndarray, max_iterations: int) -> np.ndarray:
    pad = np.pad(d, 1, constant_values=np.inf)
    for _ in range(max_iterations):
        a = [np.minimum(np.moveaxis(pad, ax, 0)[:-2], np.moveaxis(pad, ax, 0)[2:]) for ax in range(3)]
        a = [np.moveaxis(v, 0, ax)[tuple(slice(1, -1) if k != ax else slice(None) for k in range(3))]
             for ax, v in enumerate(a)]
        # Sort the neighbour values (scaled by spacing) and solve the upwind quadratic
        # Σ_a ((u − a_a)/h_a)² = 1 over the smallest consistent set of axes.
        vals = np.stack(a)                               # (3, Z, Y, X)
        hs = np.asarray(h, dtype=np.float64).reshape(3, 1, 1, 1) * np.ones_like(vals)
        order = np.argsort(vals, axis=0)
        vals = np.take_along_axis(vals, order, 0)
        hs = np.take_along_axis(hs, order, 0)
        u = vals[0] + hs[0]
        for k in (2, 3):
            w = 1.0 / np.square(hs[:k])
            A = w.sum(0)
            B = (w * vals[:k]).sum(0)
            C = (w * np.square(vals[:k])).sum(0) - 1.0
            with np.errstate(invalid="ignore"):
                root = (B + np.sqrt(np.maximum(B * B - A * C, 0.0))) / A
            use = np.isfinite(vals[k - 1]) & (root > vals[k - 1])
            u = np.where(use, root, u)
        new = np.where(fixed, d, np.minimum(d, u))
        if np.array_equal(new, d):
            break
        d = new
        pad[1:-1, 1:-1, 1:-1] = d
    return d


def redistance(values, spacing=(1.0, 1.0, 1.0), max_iterations: int | None = None):
    """Signed distances with the zero set of ``values`` (Z×Y×X or Z×Y×X×1 grid).

    ``spacing`` is the voxel size (x, y, z) in world units. Returns the same
    type as the input (NumPy array or Dr.Jit tensor, detached). A grid with no
    sign change has no surface and is returned unchanged.
    """
    import drjit as dr
    is_tensor = dr.is_tensor_v(values)
    arr = np.array(dr.detach(values) if is_tensor else values, dtype=np.float64)
    shape = arr.shape
    if arr.ndim == 4:
        if shape[3] != 1:
            raise UserError(f"redistance: an SDF grid has 1 channel, got shape {shape}")
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise UserError(f"redistance: expected a 3-D grid, got shape {shape}")
    if not np.all(np.isfinite(arr)):
        raise UserError("redistance: the SDF grid contains non-finite values")
    h = (float(spacing[2]), float(spacing[1]), float(spacing[0]))     # (z, y, x) axes
    band = _band(arr, h)
    fixed = np.isfinite(band)
    if not fixed.any():
        return values
    iterations = max_iterations or sum(arr.shape)
    dist = _godunov(band, h, fixed, iterations)
    out = np.where(arr < 0, -dist, dist).astype(np.float32).reshape(shape)
    return type(values)(out) if is_tensor else out
