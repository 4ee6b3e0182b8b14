"""Weighted sparse-pixel losses and reference gathering (differentiable, Dr.Jit only)."""
from __future__ import annotations

from ..errors import UserError
from ..optimize.losses import DEFAULT_LOSS, HUBER_DELTA, LOSSES, check_loss, pixel_loss  # noqa: F401
from .render import gather_pixels


def gather_reference(references, batch):
    """The reference pixels of ``batch`` as an (N, C) tensor.

    ``references``: one (H, W, C) ``mi.TensorXf`` per view (a list), or one tensor; or all
    views' pixels laid end to end as one (V·P, C) tensor (:func:`stack_references`), which a
    batch over several views (``batch.views``) is gathered from without stacking again.
    """
    w, h = batch.image_size
    if not isinstance(references, (list, tuple)):
        if len(references.shape) == 2 and references.shape[0] == batch.n_views * w * h:
            return gather_pixels(references, batch.flat_index)
        references = [references]
    for i, ref in enumerate(references):
        if len(ref.shape) != 3 or tuple(ref.shape[:2]) != (h, w):
            raise UserError(f"gather_reference: reference {i} has shape {tuple(ref.shape)}, "
                            f"expected ({h}, {w}, C)")
    if batch.view is None:
        if len(references) != batch.n_views:
            raise UserError(f"gather_reference: the batch spans {batch.n_views} views, "
                            f"{len(references)} references were given")
        return gather_pixels(stack_references(references), batch.flat_index)
    if not (0 <= batch.view < len(references)):
        raise UserError(f"gather_reference: view {batch.view} out of range (0..{len(references) - 1})")
    return gather_pixels(references[batch.view], batch.pixel_index)


def stack_references(references):
    """The (H, W, C) references of all views as one (V·P, C) tensor, row view·P + y·W + x."""
    import drjit as dr
    import mitsuba as mi
    c = references[0].shape[2]
    flat = dr.concat([r.array for r in references]) if len(references) > 1 else references[0].array
    return mi.TensorXf(flat, (dr.width(flat) // c, c))


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
