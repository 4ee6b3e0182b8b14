"""Image-space adaptive pixel sampling and sparse-pixel rendering.

Each optimization step renders a small, well-chosen set of pixels of one view
and weights their losses so that the gradient stays unbiased::

    sampler = rvs_mi.sampling.make_sampler("adaptive", image_size=(W, H), n_views=V,
                                           budget=0.05, beta=0.2, rebuild_every=10, tile=8,
                                           statistic="residual", view_choice="uniform", seed=0)
    for step in range(steps):
        batch = sampler.draw(step)                 # batch.view, batch.pixel_index, batch.weight
        values = rvs_mi.sampling.render_pixels(scene, params, sensors, batch, spp=4, seed=step)
        ref = rvs_mi.sampling.gather_reference(references, batch)   # (N, C), dr.gather
        loss = rvs_mi.sampling.weighted_loss(values, ref, batch, kind="l2")
        dr.backward(loss); opt.step(); params.update(opt)
        sampler.observe(batch, values, ref)        # per-tile residual statistics
    state = sampler.state_dict()                   # plain Python/NumPy, for checkpoints
    sampler.load_state_dict(state)

Samplers (one class, :class:`PixelSampler`, differing in the pixel
distribution): ``full`` (all P pixels of the view, w = 1/P), ``uniform`` (N
pixels with replacement, w = 1/N), ``adaptive`` (q from tile statistics mixed
with uniform by β, rebuilt every K steps, w = 1/(N·P·q) ≤ 1/(β·N)).  ``budget``
is a fraction of the image (float ≤ 1) or a pixel count.  The defaults of the
options are ``SAMPLER_DEFAULTS``.
The view of each step is drawn uniformly or (``view_choice="adaptive"``) in
proportion to the views' total statistic mixed with uniform by β; the weights
then include 1/(V·r_v), so Σ_j w_j ℓ_j estimates the mean per-pixel loss over
all views and pixels (``image_loss`` of a uniformly chosen full view has the
same expectation). With ``view_choice="all"`` each sample draws its own view:
the batch spreads over all views (one render through the flat sensor), and the
adaptive distribution is one pmf over the tiles of all views.

``render_pixels`` renders through ``mi.render`` with Mitsuba's flat sensor,
hence with the scene's own integrator, forward, reverse and RB adjoint pass;
integrators that need the real film raise ``UserError`` (see
:func:`film_incompatibility`).  Values are (N, C) ``mi.TensorXf``.
"""
from .batch import PixelBatch
from .defaults import SAMPLER_DEFAULTS, SAMPLERS, STATISTICS, VIEW_CHOICES, SamplerOptions, resolve_budget
from .sampler import PixelSampler, make_sampler
from .render import film_incompatibility, gather_pixels, render_indices, render_pixels, render_pixels_tangent
from .loss import LOSSES, gather_reference, per_sample_loss, stack_references, weighted_loss

__all__ = ["make_sampler", "render_pixels", "render_indices", "render_pixels_tangent", "gather_reference", "stack_references", "weighted_loss", "per_sample_loss",
           "gather_pixels", "film_incompatibility", "resolve_budget", "PixelBatch", "PixelSampler", "SamplerOptions",
           "SAMPLER_DEFAULTS", "SAMPLERS", "STATISTICS", "VIEW_CHOICES", "LOSSES"]
