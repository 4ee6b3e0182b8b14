"""The volume scene built for a dataset when a config names no scene file.

``[references] dataset = "DIR"`` without ``[scene] file`` fits an emission–absorption
volume: a density grid and a radiance grid (RGB, or spherical harmonics of degree
``volume.sh_degree``) of ``volume.resolution``³ voxels in a box, rendered by
``volume.integrator`` (id ``volume``, so the parameters are ``volume.density.data``
and ``volume.radiance.data``) over the constant background of
``references.background``.

The box is ``volume.bounds``, or the region the cameras agree on: the points of a
lattice, around the point nearest to all optical axes, that project into every
view's image and, for images with alpha, onto a non-transparent pixel (masks
dilated by one pixel) of every view; their bounding box is padded by 5% of its
size and one lattice cell on each side, and carved again on a finer lattice.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from .dataset import Split, srgb_to_linear

LATTICE = 64            # points per axis of the lattice the box is carved from
PAD = 0.05              # padding of the carved box, as a fraction of its size
SH_DC = 0.28209479177387814      # Y₀₀: the degree-0 SH basis function


def _axes_point(c2w: list) -> np.ndarray:
    """The point nearest (least squares) to all optical axes (Mitsuba cameras look along +z)."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for m in c2w:
        o, d = m[:3, 3], m[:3, 2] / np.linalg.norm(m[:3, 2])
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
    if np.linalg.cond(A) > 1e6:             # (nearly) parallel axes: in front of the mean camera
        o = np.mean([m[:3, 3] for m in c2w], axis=0)
        d = np.mean([m[:3, 2] for m in c2w], axis=0)
        return o + d / max(np.linalg.norm(d), 1e-12) * np.mean([np.linalg.norm(m[:3, 3] - o) for m in c2w])
    return np.linalg.solve(A, b)


def project(c2w: np.ndarray, fov_x_deg: float, size: tuple, points: np.ndarray):
    """(column, row, in front) of world ``points`` (N×3) in an image of ``size`` (W, H).

    Mitsuba's perspective camera: local +z forward, +y up, +x towards the image's left.
    """
    w, h = size
    local = (points - c2w[:3, 3]) @ c2w[:3, :3]            # R^T (p − o), rows
    z = local[:, 2]
    tx = math.tan(math.radians(fov_x_deg) / 2)
    ty = tx * h / w
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -local[:, 0] / (z * tx)
        v = local[:, 1] / (z * ty)
    return (u + 1) * 0.5 * w, (1 - v) * 0.5 * h, z > 0


def _carve(split: Split, lo: np.ndarray, hi: np.ndarray):
    """(lo, hi) of the lattice points in [lo, hi] that every view sees (on its mask), padded;
    None when there is none."""
    from scipy.ndimage import binary_dilation
    axes = [np.linspace(a, b, LATTICE) for a, b in zip(lo, hi)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep = np.ones(len(points), bool)
    for i, c2w in enumerate(split.c2w):
        h, w = split.images[i].shape[:2]
        col, row, front = project(c2w, split.fov_x_deg, (w, h), points)
        inside = front & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        if split.alphas is not None:
            mask = binary_dilation(split.alphas[i] > 0.01, iterations=1)
            inside[inside] = mask[row[inside].astype(int), col[inside].astype(int)]
        keep &= inside
    if not keep.any():
        return None
    a, b = points[keep].min(0), points[keep].max(0)
    pad = PAD * (b - a) + (hi - lo) / (LATTICE - 1)
    return a - pad, b + pad


def camera_bounds(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the box the cameras (and alpha masks) of ``split`` agree on: carved on a
    lattice around the point nearest to the optical axes, then again on a lattice over
    that first box (a finer cell)."""
    center = _axes_point(split.c2w)
    half = max(float(np.linalg.norm(m[:3, 3] - center)) for m in split.c2w)
    box = (center - half, center + half)
    for _ in range(2):
        box = _carve(split, *box)
        if box is None:
            raise UserError("the cameras of the dataset agree on no region (no point is seen by all "
                            "views on a non-transparent pixel); give volume.bounds")
    return box


def initial_grids(v) -> tuple[np.ndarray, np.ndarray]:
    """Constant density and radiance grids of ``v.resolution``³ (``v``: the [volume] section)."""
    n = v.resolution
    density = np.full((n, n, n, 1), v.density_init, np.float32)
    channels = 3 * (v.sh_degree + 1) ** 2
    radiance = np.zeros((n, n, n, channels), np.float32)
    # Raw radiance radiance_init in every direction: RGB directly, or the DC SH coefficient.
    radiance[..., :3] = v.radiance_init if v.sh_degree == 0 else v.radiance_init / SH_DC
    return density, radiance


def build_volume_scene(config, train: Split, background_srgb):
    """The volume scene for ``train``'s cameras; its own
    sensor is the first training view (horizontal FOV, Mitsuba's default ``fov_axis``)."""
    from ..volume.scene import load_volume_scene
    v = config.volume
    if v.bounds:
        lo, hi = np.array(v.bounds[:3]), np.array(v.bounds[3:])
    else:
        lo, hi = camera_bounds(train)
    density, radiance = initial_grids(v)
    c2w = train.c2w[0]
    h, w = train.images[0].shape[:2]
    options = {**v.options, "density_activation": v.density_activation,
               "radiance_activation": v.radiance_activation}
    scene = load_volume_scene(density, radiance, v.integrator, options, box_min=lo, box_max=hi,
                              resolution=(w, h), camera="perspective", origin=c2w[:3, 3],
                              target=c2w[:3, 3] + c2w[:3, 2], up=c2w[:3, 1], fov=train.fov_x_deg,
                              background=srgb_to_linear(background_srgb).tolist())
    return scene
