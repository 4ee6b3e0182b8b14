"""Per-sample statistics that the adaptive sampler accumulates per (view, tile) cell (detached)."""
from __future__ import annotations

from ..errors import UserError


def _per_sample_sq_projected_gradient(values, reference, tangent, kind="l2", delta=0.1):
    """(Σ_c ∂ℓ/∂I_c · t_c)² per sample (detached): ℓ = mean over channels of the loss."""
    import drjit as dr
    from .loss import channel_mean, loss_derivative
    if tuple(tangent.shape) != tuple(values.shape):
        raise UserError(f"sampler: tangent {tuple(tangent.shape)} and values {tuple(values.shape)} differ in shape")
    dl = loss_derivative(dr.detach(values.array) - dr.detach(reference.array), kind, delta)
    return dr.square(channel_mean(dl * dr.detach(tangent.array), values.shape[1]))


def _per_sample_sq_residual(values, reference):
    """Mean over channels of (I − I_ref)², one ``mi.Float`` entry per sample (detached)."""
    import drjit as dr
    from .loss import channel_mean
    diff = dr.detach(values.array) - dr.detach(reference.array)
    return channel_mean(dr.square(diff), values.shape[1])
