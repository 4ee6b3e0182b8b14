"""Placement, filter and wrap mode of a Mitsuba ``gridvolume``, read back from the volume.

Mitsuba exposes a gridvolume's ``data`` but not its ``to_world``,
``filter_type`` or ``wrap_mode``; an integrator that evaluates the grid itself
needs all four. They are recovered from ``Volume.eval`` on probe data:

* The world → local map u = A·x + b (local box [0, 1]³) is exact from the
  bounding box when A is a signed permutation times a scale (any mix of axis
  swaps, mirrors, quarter turns and scales; the print of the volume shows
  which, to 6 digits, and the box gives the numbers exactly). Otherwise the
  volume's tensor is replaced by probe grids of resolution N = 8 whose value is
  the voxel index i_k along one axis. Inside u ∈ [1/16, 15/16]³ both filters
  satisfy  value ≥ N·L − ½  ⇔  u_k ≥ L,  so the planes u_k = 3/8 and u_k = 5/8
  are found by bisection along rays from the box centre (u = ½), and row k of
  (A, b) is the least-squares solution of a_k·x + b_k = L over the crossings
  (float32 accuracy).
* The filter and wrap modes are those of the ``mi.Texture3f`` that reproduces
  the volume's values on a probe grid at points inside and outside the box.

Grids of 12 or 27 channels cannot be given probe data (Mitsuba refuses
updates of them): their placement must be of the first kind, and their modes
are read by matching their own data; where that data cannot tell the modes
apart (a constant grid), trilinear filtering with clamping is used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError

N = 8                                  # probe resolution
GUARD = (0.375, 0.625)                 # crossing planes u_k = L
PROBE_CHANNELS = (1, 3, 6)             # channel counts Mitsuba lets us update
FILTERS = {"trilinear": dr.FilterMode.Linear, "nearest": dr.FilterMode.Nearest}
WRAPS = {"clamp": dr.WrapMode.Clamp, "repeat": dr.WrapMode.Repeat, "mirror": dr.WrapMode.Mirror}


def wrap_index(i, n: int, mode: str):
    """Integer voxel index ``i`` (Dr.Jit Int32) mapped into [0, n) like a gridvolume's
    ``wrap_mode``: ``clamp``, ``repeat`` or ``mirror`` (…, 1, 0 | 0, 1, …, n−1 | n−1, …)."""
    if mode == "repeat":
        return ((i % n) + n) % n
    if mode == "mirror":
        period = 2 * n
        j = ((i % period) + period) % period
        return dr.select(j < n, j, period - 1 - j)
    return dr.clip(i, 0, n - 1)


@dataclass(frozen=True)
class Placement:
    """World → [0,1]³ transform and texture modes of a gridvolume."""
    to_local: np.ndarray               # 4×4, float64
    filter_type: str                   # key of FILTERS
    wrap_mode: str                     # key of WRAPS

    @property
    def transform(self) -> mi.ScalarTransform4f:
        return mi.ScalarTransform4f(self.to_local.tolist())

    def texture(self, data) -> mi.Texture3f:
        """A texture over ``data`` with these modes (``use_accel=False``: exact gradients)."""
        return mi.Texture3f(data, use_accel=False, filter_mode=FILTERS[self.filter_type],
                            wrap_mode=WRAPS[self.wrap_mode])


def _eval(volume, points: np.ndarray) -> np.ndarray:
    """Channel 0 of ``volume`` at world points (n, 3)."""
    it = dr.zeros(mi.Interaction3f, len(points))
    p = points.astype(np.float32)
    it.p = mi.Point3f(mi.Float(p[:, 0]), mi.Float(p[:, 1]), mi.Float(p[:, 2]))
    return np.array(volume.eval_n(it)[0], dtype=np.float64)


def _local_points(to_local: np.ndarray, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n local points in [−0.4, 1.4]³ and their world positions."""
    u = rng.uniform(-0.4, 1.4, size=(n, 3))
    world = (np.linalg.inv(to_local) @ np.c_[u, np.ones(n)].T).T[:, :3]
    world = world.astype(np.float32).astype(np.float64)
    u = (to_local @ np.c_[world, np.ones(n)].T).T[:, :3]
    return u, world


def _printed_linear(volume) -> np.ndarray | None:
    """The 3×3 linear part of ``to_local`` as Mitsuba prints it (6 digits)."""
    m = re.search(r"to_local\s*=\s*Transform\[\s*matrix=\[(.*?)\]\],", str(volume), re.S)
    if not m:
        return None
    rows = re.findall(r"\[([^\[\]]*)", "[" + m.group(1) + "]")
    try:
        matrix = np.array([[float(x) for x in r.split(",")] for r in rows if r.strip()])
    except ValueError:
        return None
    return matrix[:3, :3] if matrix.shape == (4, 4) else None


def _permutation_placement(volume) -> np.ndarray | None:
    """Exact ``to_local`` when its linear part is a signed permutation times a scale."""
    lin = _printed_linear(volume)
    if lin is None:
        return None
    big = np.abs(lin) > 1e-4 * np.abs(lin).max()
    if not (big.sum(axis=0) == 1).all() or not (big.sum(axis=1) == 1).all():
        return None
    bbox = volume.bbox()
    lo = np.array(bbox.min, dtype=np.float64).ravel()
    hi = np.array(bbox.max, dtype=np.float64).ravel()
    out = np.eye(4)
    out[:3, :3] = 0.0
    for k in range(3):                          # u_k depends on world axis j only
        j = int(np.argmax(big[k]))
        s = 1.0 / max(hi[j] - lo[j], 1e-30)
        if lin[k, j] > 0:
            out[k, j], out[k, 3] = s, -lo[j] * s
        else:
            out[k, j], out[k, 3] = -s, hi[j] * s
    return out


def _probe(channels: int, weights=(1.0, 0.0, 0.0)) -> mi.TensorXf:
    """Probe grid (N³, ``channels``) of value Σ_k weights_k · i_k (voxel indices)."""
    i = np.arange(N, dtype=np.float64)
    z, y, x = np.meshgrid(i, i, i, indexing="ij")
    value = weights[0] * x + weights[1] * y + weights[2] * z
    return mi.TensorXf(np.repeat(value[..., None], channels, axis=3).astype(np.float32))


def _set_data(volume, data) -> None:
    params = mi.traverse(volume)
    params["data"] = data
    params.update()


def _crossings(volume, channels: int, centre, dirs, t0: float) -> tuple[list, list]:
    """Points of planes u_k ∈ GUARD on rays ``centre + t·dir``: (points, (axis, level))."""
    m = np.arange(80)
    ts = t0 * 2.0 ** m                                         # doubling t_m = t0·2^m
    pts = centre[None, None, :] + ts[None, :, None] * dirs[:, None, :]
    values = []
    for k in range(3):
        _set_data(volume, _probe(channels, np.eye(3)[k]))
        values.append(_eval(volume, pts.reshape(-1, 3)).reshape(len(dirs), len(m)))
    lo_v, hi_v = N * GUARD[0] - 0.5, N * GUARD[1] - 0.5
    outside = [(v <= lo_v) | (v >= hi_v) for v in values]
    first = np.argmax(np.any(outside, axis=0), axis=1)         # first doubling past a guard
    ok = np.any(np.any(outside, axis=0), axis=1) & (first > 0)
    points, labels = [], []
    for k in range(3):
        rays = np.nonzero(ok & outside[k][np.arange(len(dirs)), first])[0]
        if not len(rays):
            continue
        level = np.where(values[k][rays, first[rays]] >= hi_v, GUARD[1], GUARD[0])
        a, b = ts[first[rays] - 1], ts[first[rays]]            # u_k inside at a, past L at b
        _set_data(volume, _probe(channels, np.eye(3)[k]))
        for _ in range(60):                                    # bisection on value ≥ N·L − ½
            mid = 0.5 * (a + b)
            v = _eval(volume, centre + mid[:, None] * dirs[rays])
            past = np.where(level > 0.5, v >= N * level - 0.5, v < N * level - 0.5)
            a, b = np.where(past, a, mid), np.where(past, mid, b)
        points.append(centre + (0.5 * (a + b))[:, None] * dirs[rays])
        labels.append(np.stack([np.full(len(rays), k), level], axis=1))
    return points, labels


def _fit(points, labels) -> np.ndarray | None:
    """Rows (a_k, b_k) of ``to_local`` by least squares on a_k·x + b_k = L."""
    if not points:
        return None
    x, lab = np.concatenate(points), np.concatenate(labels)
    out = np.eye(4)
    for k in range(3):
        sel = lab[:, 0] == k
        A = np.c_[x[sel], np.ones(sel.sum())]
        if sel.sum() < 4 or np.linalg.matrix_rank(A) < 4:
            return None
        out[k] = np.linalg.lstsq(A, lab[sel, 1], rcond=None)[0]
    return out


def _bisected_placement(volume, channels: int) -> np.ndarray | None:
    bbox = volume.bbox()
    lo = np.array(bbox.min, dtype=np.float64).ravel()
    hi = np.array(bbox.max, dtype=np.float64).ravel()
    centre, t0 = 0.5 * (lo + hi), 1e-7 * float(np.linalg.norm(hi - lo))
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(256, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    points, labels = _crossings(volume, channels, centre, dirs, t0)
    rough = _fit(points, labels)
    if rough is None:
        return None
    # Rays along ±A⁻¹(e_k + noise) cross the planes of axis k first.
    inv = np.linalg.inv(rough[:3, :3])
    e = np.repeat(np.eye(3), 16, axis=0) + 0.2 * rng.normal(size=(48, 3))
    more = (inv @ np.r_[e, -e].T).T
    more /= np.linalg.norm(more, axis=1, keepdims=True)
    p2, l2 = _crossings(volume, channels, centre, more, t0)
    return _fit(points + p2, labels + l2)


def _modes(volume, data, to_local: np.ndarray, name: str, probed: bool) -> tuple[str, str]:
    """The (filter, wrap) whose Texture3f over ``data`` reproduces ``volume.eval``."""
    u, world = _local_points(to_local, np.random.default_rng(1), 512)
    ref = _eval(volume, world)
    scale = max(float(np.abs(ref).max()), 1e-30)
    pts = mi.Point3f(*[mi.Float(u[:, k].astype(np.float32)) for k in range(3)])
    matches = []
    for f in FILTERS:
        for w in WRAPS:
            tex = Placement(to_local, f, w).texture(data)
            got = np.array(tex.eval(pts)[0], dtype=np.float64)
            if np.abs(got - ref).max() <= 1e-5 * scale:
                matches.append((f, w))
    if not matches:
        raise UserError(f"could not read the placement of the {name} gridvolume "
                        "(its values match no affine to_world with Mitsuba's filter and wrap modes)")
    if len(matches) > 1 and probed:
        raise UserError(f"could not tell the filter_type/wrap_mode of the {name} gridvolume apart")
    return matches[0]


def read_placement(volume, name: str) -> Placement:
    """The :class:`Placement` of a gridvolume (its data is left as it was)."""
    data = mi.TensorXf(mi.traverse(volume)["data"])
    channels = int(data.shape[3])
    to_local = _permutation_placement(volume)
    if channels not in PROBE_CHANNELS:
        if to_local is None:
            raise UserError(f"the {name} gridvolume has {channels} channels, which Mitsuba cannot "
                            "update, so only axis swaps, mirrors, quarter turns, scales and "
                            "translations are supported in its to_world")
        return Placement(to_local, *_modes(volume, data, to_local, name, probed=False))
    try:
        if to_local is None:
            to_local = _bisected_placement(volume, channels)
            if to_local is None:
                raise UserError(f"could not read the to_world of the {name} gridvolume "
                                "(is it singular?)")
        probe = _probe(channels, (1.0, float(N), float(N * N)))
        _set_data(volume, probe)
        modes = _modes(volume, probe, to_local, name, probed=True)
    finally:
        _set_data(volume, data)
    return Placement(to_local, *modes)
