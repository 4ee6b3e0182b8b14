"""Image losses and grid regularizers on Dr.Jit tensors (differentiable)."""
from __future__ import annotations

import drjit as dr

from ..errors import UserError

LOSSES = ("l1", "l2", "huber")
DEFAULT_LOSS = "l2"
HUBER_DELTA = 0.1


def check_loss(kind: str) -> str:
    if kind not in LOSSES:
        raise UserError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
    return kind


def pixel_loss(pred, ref, kind: str = DEFAULT_LOSS, delta: float = HUBER_DELTA):
    """Per-entry loss ℓ(pred − ref): ``l1`` |r|, ``l2`` r², ``huber`` (quadratic below delta)."""
    check_loss(kind)
    r = pred - ref
    if kind == "l1":
        return dr.abs(r)
    if kind == "l2":
        return dr.square(r)
    a = dr.abs(r)
    return dr.select(a <= delta, 0.5 * dr.square(r), delta * (a - 0.5 * delta))


def pixel_loss_derivative(residual, kind: str = DEFAULT_LOSS, delta: float = HUBER_DELTA):
    """∂ℓ/∂r of :func:`pixel_loss` at r = pred − ref."""
    check_loss(kind)
    if kind == "l2":
        return 2.0 * residual
    if kind == "l1":
        return dr.sign(residual)
    return dr.clip(residual, -delta, delta)


def image_loss(image, ref, kind: str = DEFAULT_LOSS, delta: float = HUBER_DELTA, levels: int = 1):
    """Mean pixel loss of an H×W×C image tensor; ``levels`` > 1 adds 2× box-downsampled
    pyramid levels (each level's mean loss weighted equally)."""
    total = dr.mean(pixel_loss(image, ref, kind, delta), axis=None)
    for _ in range(levels - 1):
        h, w, c = image.shape
        if h < 2 or w < 2:
            break
        image, ref = half(image), half(ref)
        total = total + dr.mean(pixel_loss(image, ref, kind, delta), axis=None)
    return total / levels


def half(image):
    """The H×W×C tensor box-downsampled by 2 (the mean of each 2×2 block; an odd last row or
    column is dropped), by gathers: no resampling tables, so a frozen step can contain it."""
    h, w, c = image.shape
    H, W = h // 2, w // 2
    i = dr.arange(dr.uint32_array_t(type(image.array)), H * W * c)
    ch, pix = i % c, i // c
    y, x = pix // W, pix % W
    top = (2 * y * w + 2 * x) * c + ch
    total = sum(dr.gather(type(image.array), image.array, top + off)
                for off in (0, c, w * c, w * c + c))
    return type(image)(total * 0.25, (H, W, c))


def _diffs(grid):
    """Forward differences of a 3-D grid tensor (Z×Y×X×C) along its three spatial axes."""
    return (grid[1:] - grid[:-1], grid[:, 1:] - grid[:, :-1], grid[:, :, 1:] - grid[:, :, :-1])


def total_variation(grid):
    """Anisotropic TV: mean |forward difference| over the three axes."""
    return sum(dr.mean(dr.abs(d), axis=None) for d in _diffs(grid))


def laplacian(grid):
    """Mean squared discrete Laplacian (second differences along each axis)."""
    z = grid[2:, 1:-1, 1:-1] + grid[:-2, 1:-1, 1:-1]
    y = grid[1:-1, 2:, 1:-1] + grid[1:-1, :-2, 1:-1]
    x = grid[1:-1, 1:-1, 2:] + grid[1:-1, 1:-1, :-2]
    lap = z + y + x - 6.0 * grid[1:-1, 1:-1, 1:-1]
    return dr.mean(dr.square(lap), axis=None)
