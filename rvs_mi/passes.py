"""Memory-bounded rendering: an image rendered in passes of at most ``pass_rays`` samples.

The memory of rvs-mi's integrators grows with the samples of one wavefront (flat
arrays of knots and sample points per ray, and in AD modes their graph). The
integrators therefore render an image of W×H pixels at spp samples per pixel in
passes: each pass covers a band of image rows with all their samples, or, when one
row alone holds more than ``pass_rays`` samples, one row with a share of its
samples (:func:`plan`). The passes add up:

* primal: every pass splats into one image block, which the film develops once;
* forward mode: each pass propagates the parameter tangents to its block; the
  blocks' values and tangents are summed, and the tangent image is the film's
  ``develop`` differentiated at the summed block;
* reverse mode: the image gradient goes back through the film's ``develop`` to the
  block, evaluated at the summed block of a primal render with the same seeds (the
  film divides by the summed filter weights); then each pass renders again and
  takes its share of that block gradient back to the parameters, whose gradients
  accumulate over the passes.

Band k draws its samples from a clone of the sensor's sampler seeded with ``seed``
(k = 0) or with a hash of (seed, k); its passes are the sampler's passes
(``advance()``), so a stratified sampler stratifies all spp samples of a pixel. A
render that fits in one pass is unchanged, and a render in passes is the same
estimator with other random numbers, identical for the same seed and pass size. Its
AD graph and temporaries are those of one pass.
"""
from __future__ import annotations

import drjit as dr
import mitsuba as mi

#: Default ``pass_rays`` of the volume integrators: 2^18 samples (a 512² image at 1 spp; about
#: 1 GB for ``rvs`` with 128 knots). The SDF integrators keep O(1) state per sample and default
#: to ``SDF_PASS_RAYS``.
DEFAULT_PASS_RAYS = 1 << 18
SDF_PASS_RAYS = 1 << 22


def read_pass_rays(props, default: int = DEFAULT_PASS_RAYS) -> int:
    """The ``pass_rays`` property of an integrator (≥ 0; 0: one pass whatever the size)."""
    from .scene import prop
    return prop(props, "pass_rays", int, default, min=0)


def plan(width: int, height: int, spp: int, pass_rays: int) -> list[tuple[int, int, int]]:
    """Bands (first row, rows, samples per pixel and pass) covering ``height`` rows.

    A band renders in spp / samples passes. Bands of whole rows with all their samples
    when a row fits in ``pass_rays`` (one pass each); otherwise one row per band, in passes
    of the largest divisor of ``spp`` not above ⌊pass_rays / width⌋ (at least 1) samples.
    """
    per_row = width * spp
    if pass_rays <= 0 or per_row * height <= pass_rays:
        return [(0, height, spp)]
    if per_row <= pass_rays:
        rows = pass_rays // per_row
        return [(r, min(rows, height - r), spp) for r in range(0, height, rows)]
    share = max(1, pass_rays // width)
    divisors = {d for i in range(1, int(spp ** 0.5) + 1) if spp % i == 0 for d in (i, spp // i)}
    samples = max(d for d in divisors if d <= share)
    return [(r, 1, samples) for r in range(height)]


def pass_seed(seed, k: int):
    """The sampler seed of band ``k``: ``seed`` itself for the first band, else a hash of (seed, k)
    (an opaque value, so that the bands share their compiled kernels)."""
    if k == 0:
        return seed
    return dr.opaque(mi.UInt32, mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(k))[0][0])


def band_sampler(sampler, seed, k: int, spp: int, samples: int, pixels: int):
    """A clone of ``sampler`` for band ``k`` of ``pixels`` pixels: ``spp`` samples per pixel, drawn
    ``samples`` per pass (``advance()`` moves to the next pass's samples, so a stratified
    sampler stratifies all ``spp`` of a pixel across the passes, as in Mitsuba's own passes)."""
    sampler = sampler.clone()
    sampler.set_sample_count(spp)
    sampler.set_samples_per_wavefront(samples)
    sampler.seed(pass_seed(seed, k), pixels * samples)
    return sampler


def film_extent(film) -> tuple[int, int]:
    """(width, height) of the sampled region: the crop window, plus the filter border if sampled."""
    size = film.crop_size()
    if film.sample_border():
        size += 2 * film.rfilter().border_size()
    return int(size[0]), int(size[1])


def sample_band(sensor, sampler, row0: int, rows: int, samples: int):
    """Primary rays of image rows ``row0`` … ``row0 + rows − 1`` (of :func:`film_extent`),
    ``samples`` per pixel: (rays, weights, splatting positions), as Mitsuba's
    ``ADIntegrator.sample_rays`` draws them for the whole film."""
    film = sensor.film()
    width, _ = film_extent(film)
    idx = dr.arange(mi.UInt32, width * rows * samples) // samples
    pos = mi.Vector2i(mi.Int32(idx % width), mi.Int32(idx // width + dr.opaque(mi.UInt32, row0)))
    if film.sample_border():
        pos -= film.rfilter().border_size()
    pos += mi.Vector2i(film.crop_offset())
    pos_f = mi.Vector2f(pos) + sampler.next_2d()
    scale = dr.rcp(mi.ScalarVector2f(film.crop_size()))
    offset = -mi.ScalarVector2f(film.crop_offset()) * scale
    aperture = sampler.next_2d() if sensor.needs_aperture_sample() else mi.Vector2f(0.0)
    time = sensor.shutter_open()
    if sensor.shutter_open_time() > 0:
        time += sampler.next_1d() * sensor.shutter_open_time()
    wavelength = sampler.next_1d() if mi.is_spectral else 0
    with dr.resume_grad():
        ray, weight = sensor.sample_ray_differential(time=time, sample1=wavelength,
                                                     sample2=dr.fma(pos_f, scale, offset), sample3=aperture)
    return ray, weight, mi.Vector2f(pos) if film.rfilter().is_box_filter() else pos_f


def block_like(template, tensor):
    """An image block holding ``tensor`` with the placement and settings of ``template``."""
    return mi.ImageBlock(tensor, offset=template.offset(), rfilter=template.rfilter(),
                         border=template.has_border(), normalize=template.normalize(),
                         coalesce=template.coalesce(), warn_negative=template.warn_negative(),
                         warn_invalid=template.warn_invalid())


#: Traversal flags of one pass. Reverse mode clears interior gradients once propagated (a
#: node shared by the passes, such as a parameter computed from another, must not pass
#: on its earlier passes' gradient again); the parameters' gradients accumulate. Forward
#: mode keeps the tangents: the parameter tangents that ``mi.render`` hands over are needed by
#: every pass (clearing interior nodes there loses them). It clears the edges it traversed:
#: Dr.Jit's forward mode through two differentiable loops that read the same parameter
#: otherwise stops at an edge the first loop added ("outside of the current
#: dr.isolate_grad() scope"); a parameter computed from another keeps its tangent for the
#: later passes.
FORWARD_FLAGS = dr.ADFlag.AllowNoGrad | dr.ADFlag.ClearEdges
BACKWARD_FLAGS = dr.ADFlag.ClearInterior | dr.ADFlag.AllowNoGrad


def _plan(integrator, scene, sensor, spp):
    if isinstance(sensor, int):
        sensor = scene.sensors()[sensor]
    spp = spp or sensor.sampler().sample_count()
    width, height = film_extent(sensor.film())
    return sensor, spp, plan(width, height, spp, integrator.pass_rays)


def one_pass(bands, spp: int) -> bool:
    """Whether ``bands`` (of :func:`plan`) is a single pass."""
    return len(bands) == 1 and bands[0][2] == spp


def _each_pass(sensor, seed, spp, bands):
    """(sampler, first row, rows, samples) of every pass, the band's sampler advanced between them."""
    width, _ = film_extent(sensor.film())
    for k, (row0, rows, samples) in enumerate(bands):
        with dr.suspend_grad():
            sampler = band_sampler(sensor.sampler(), seed, k, spp, samples, width * rows)
        for j in range(spp // samples):
            if j:
                sampler.advance()
            yield sampler, row0, rows, samples


def _splat_pass(integrator, scene, sensor, block, sampler, row0, rows, samples, mode):
    """Render one pass (rows ``row0`` … of the band, ``samples`` per pixel) into ``block``."""
    film = sensor.film()
    with dr.suspend_grad():
        ray, weight, pos = sample_band(sensor, sampler, row0, rows, samples)
    with dr.resume_grad(when=mode != dr.ADMode.Primal):
        L, valid, aovs, _ = integrator.sample(mode=mode, scene=scene, sampler=sampler, ray=ray,
                                              depth=mi.UInt32(0), δL=None, δaovs=None, state_in=None,
                                              active=mi.Bool(True))
        mi.ad.integrators.common.ADIntegrator._splat_to_block(
            block, film, pos, value=L * weight, weight=1.0,
            alpha=dr.select(valid, mi.Float(1), mi.Float(0)), aovs=aovs, wavelengths=ray.wavelengths)


def _primal_block(integrator, scene, sensor, seed, spp, bands):
    film = sensor.film()
    film.prepare(integrator.aov_names())
    with dr.suspend_grad():
        block = film.create_block()
        for args in _each_pass(sensor, seed, spp, bands):
            _splat_pass(integrator, scene, sensor, block, *args, dr.ADMode.Primal)
            dr.eval(block.tensor())
    return block


# The three entry points below take the integrator (an ``ADIntegrator`` with a ``pass_rays``
# attribute) and ``single``, its base class's method, which renders a one-pass image.

def render(integrator, single, scene, sensor=0, seed=0, spp=0, develop=True, evaluate=True):
    """``Integrator.render`` in passes."""
    sensor, spp, bands = _plan(integrator, scene, sensor, spp)
    if one_pass(bands, spp):
        return single(scene, sensor, seed, spp, develop, evaluate)
    film = sensor.film()
    with dr.suspend_grad():
        film.put_block(_primal_block(integrator, scene, sensor, seed, spp, bands))
        return film.develop()


def render_forward(integrator, single, scene, params, sensor=0, seed=0, spp=0):
    """``ADIntegrator.render_forward`` in passes: the tangent image."""
    sensor, spp, bands = _plan(integrator, scene, sensor, spp)
    if one_pass(bands, spp):
        return single(scene, params, sensor, seed, spp)
    film = sensor.film()
    film.prepare(integrator.aov_names())
    values = tangents = block = None
    for args in _each_pass(sensor, seed, spp, bands):
        with dr.resume_grad():
            block = film.create_block()
            _splat_pass(integrator, scene, sensor, block, *args, dr.ADMode.Forward)
            tensor = block.tensor()
            dr.forward_to(tensor, flags=FORWARD_FLAGS)
            value, tangent = dr.detach(tensor), dr.grad(tensor)
        values = value if values is None else values + value
        tangents = tangent if tangents is None else tangents + tangent
        dr.eval(values, tangents)
    with dr.resume_grad():
        summed = mi.TensorXf(values)
        dr.enable_grad(summed)
        dr.set_grad(summed, tangents)
        film.put_block(block_like(block, summed))
        image = film.develop()
        dr.forward_to(image, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
        return dr.grad(image)


def render_backward(integrator, single, scene, params, grad_in, sensor=0, seed=0, spp=0):
    """``ADIntegrator.render_backward`` in passes: parameter gradients accumulate."""
    sensor, spp, bands = _plan(integrator, scene, sensor, spp)
    if one_pass(bands, spp):
        return single(scene, params, grad_in, sensor, seed, spp)
    film = sensor.film()
    block = _primal_block(integrator, scene, sensor, seed, spp, bands)
    with dr.resume_grad():
        summed = mi.TensorXf(block.tensor())
        dr.enable_grad(summed)
        film.put_block(block_like(block, summed))
        image = film.develop()
        dr.set_grad(image, grad_in)
        dr.enqueue(dr.ADMode.Backward, image)
        dr.traverse(dr.ADMode.Backward)
        block_grad = dr.grad(summed)
        dr.eval(block_grad)
    for args in _each_pass(sensor, seed, spp, bands):
        with dr.resume_grad():
            block = film.create_block()
            _splat_pass(integrator, scene, sensor, block, *args, dr.ADMode.Backward)
            tensor = block.tensor()
            dr.set_grad(tensor, block_grad)
            dr.enqueue(dr.ADMode.Backward, tensor)
            dr.traverse(dr.ADMode.Backward, flags=BACKWARD_FLAGS)
        dr.eval()


def pixel_passes(render_pixels, sensor, spp: int, bands, seed, mode, grad_in=None):
    """An image rendered in passes by a renderer of pixel lists (box pixel filter, each pixel's
    samples normalized by the pass's sample count), such as the SDF integrators'.

    ``bands``: :func:`plan` of the film's crop size. ``render_pixels(pixels, sampler, samples)`` returns the (N, C) tensor of the listed
    row-major pixels from ``samples`` samples each, attached to the parameters unless ``mode``
    is primal. Returns the H×W×C image (primal), its tangent (forward), or None after taking
    ``grad_in`` back to the parameters (backward). A pass holding ``samples`` of a pixel's
    ``spp`` samples is weighted by samples / spp.
    """
    film = sensor.film()
    width, height = (int(v) for v in film.crop_size())
    channels = film.base_channels_count()
    image = dr.zeros(mi.Float, height * width * channels)
    for sampler, row0, rows, samples in _each_pass(sensor, seed, spp, bands):
        pixels = dr.arange(mi.UInt32, rows * width) + dr.opaque(mi.UInt32, row0 * width)
        slots = dr.arange(mi.UInt32, rows * width * channels) + dr.opaque(mi.UInt32, row0 * width * channels)
        share = samples / spp
        with dr.resume_grad(when=mode != dr.ADMode.Primal):
            part = render_pixels(pixels, sampler, samples)
            if mode == dr.ADMode.Primal:
                dr.scatter_add(image, part.array * share, slots)
            elif mode == dr.ADMode.Forward:
                dr.forward_to(part, flags=FORWARD_FLAGS)
                dr.scatter_add(image, dr.grad(part).array * share, slots)
            else:
                grad = dr.gather(mi.Float, grad_in.array, slots) * share
                dr.set_grad(part, mi.TensorXf(grad, part.shape))
                dr.enqueue(dr.ADMode.Backward, part)
                dr.traverse(dr.ADMode.Backward, flags=BACKWARD_FLAGS)
        dr.eval(image)
    return None if mode == dr.ADMode.Backward else mi.TensorXf(image, (height, width, channels))
