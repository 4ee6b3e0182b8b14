"""Weighted sparse-pixel losses and reference gathering (differentiable, Dr.Jit only)."""
from __future__ import annotations

from ..errors import UserError
from ..optimize.losses import DEFAULT_LOSS, HUBER_DELTA, LOSSES, check_loss, pixel_loss  # noqa: F401
from .render import gather_pixels


def gather_reference(references, batch):
    """The reference pixels of ``batch`` as an (N, C) tensor.

    ``references``: one (H, W, C) ``mi.TensorXf`` per view (a list), or one tensor.
    """
    if not isinstance(references, (list, tuple)):
        references = [references]
    if not (0 <= batch.view < len(references)):
        raise UserError(f"gather_reference: view {batch.view} out of range (0..{len(references) - 1})")
    ref = references[batch.view]
    w, h = batch.image_size
    if len(ref.shape) != 3 or tuple(ref.shape[:2]) != (h, w):
        raise UserError(f"gather_reference: reference {batch.view} has shape {tuple(ref.shape)}, "
                        f"expected ({h}, {w}, C)")
    return gather_pixels(ref, batch.pixel_index)


def per_sample_loss(values, reference, kind: str = DEFAULT_LOSS, delta: float = HUBER_DELTA):
    """ℓ_j: the mean over channels of the per-entry loss, one ``mi.Float`` entry per sample."""
    check_loss(kind)
    if tuple(values.shape) != tuple(reference.shape) or len(values.shape) != 2:
        raise UserError(f"weighted_loss: values {tuple(values.shape)} and reference {tuple(reference.shape)} "
                        "must both be (N, C)")
    return channel_mean(pixel_loss(values.array, reference.array, kind, delta), values.shape[1])


def channel_mean(flat, channels: int):
    """Mean over the ``channels`` consecutive entries of each sample of a flat (N·C) array."""
    import drjit as dr
    return dr.block_sum(flat, channels) / channels


def weighted_loss(values, reference, batch, kind: str = DEFAULT_LOSS, delta: float = HUBER_DELTA):
    """L̂ = Σ_j w_j ℓ_j (eq. 5.1): an unbiased estimate of the mean per-pixel loss
    (``rvs_mi.optimize.losses.image_loss`` of the full images, averaged over views).
    Returns a differentiable ``mi.Float`` of width 1."""
    import drjit as dr
    return dr.sum(per_sample_loss(values, reference, kind, delta) * dr.detach(batch.weight))
