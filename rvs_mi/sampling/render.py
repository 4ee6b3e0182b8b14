"""Sparse-pixel rendering through ``mi.render`` with Mitsuba's flat sensor.

``mi.ad.RayDataLoader``'s ``flat_sensor`` has a film of one row of
N pixels; before a render its ``pixel_idx`` holds N flat source indices
(view·P + y·W + x), and each of its primary rays is the source sensor's ray
through a jittered point of that pixel.  Rendering it with ``mi.render`` runs
the scene's own integrator — forward, reverse, and radiative
backpropagation's adjoint pass (``prb``: the per-pixel adjoint of the flat
film is the loss gradient at the sampled pixels) — so the values are the same
estimator as a full render at those pixels (box pixel filter), and gradients
are the integrator's.

What the flat sensor cannot serve: an integrator that splats into the film at
positions it computes itself — the projective integrators
(``direct_projective``, ``prb_projective``) project silhouette samples onto
the real film (``sensor.projection_transform``, ``sensor.sample_direction``;
with the flat sensor they fail with an AttributeError) — and rvs-mi's
``sdf_reparam``/``sdf_naive``, which generate their own pixel samples and
pixel-edge flux terms through the real sensor's projection matrix.  These
raise a ``UserError``; pass ``fallback="full"`` to render the full image with the real
sensor and gather the pixels instead (correct gradients, no saving).
"""
from __future__ import annotations

from ..errors import UserError

# (sdf_reparam / sdf_naive render a pixel list themselves: their ``render_pixels`` method.)

_PIXEL_FORMATS = {1: "luminance", 3: "rgb", 4: "rgba"}


def film_incompatibility(integrator) -> str | None:
    """Why ``integrator`` cannot render through a flat sensor (None when it can).

    A plugin can declare ``SPARSE_PIXELS = False`` (and ``SPARSE_PIXELS_REASON``)
    or ``True`` to override the built-in list.
    """
    flag = getattr(integrator, "SPARSE_PIXELS", None)
    if flag is True:
        return None
    if flag is False:
        return getattr(integrator, "SPARSE_PIXELS_REASON", "it declares SPARSE_PIXELS = False")
    # By the base's name: Mitsuba's own plugins keep the PSIntegrator class of the variant they
    # were registered under, which differs from mitsuba.ad.integrators.common's after a variant change.
    if any(cls.__name__ == "PSIntegrator" for cls in type(integrator).__mro__):
        return "its boundary term projects silhouette samples onto the real film"
    return None


def _check_sensors(sensors, batch):
    if not isinstance(sensors, (list, tuple)):
        sensors = [sensors]
    if not sensors:
        raise UserError("render_pixels: no sensors given")
    if batch.n_views != len(sensors):
        raise UserError(f"render_pixels: the sampler has {batch.n_views} views but {len(sensors)} sensors were given")
    if batch.view is not None and not (0 <= batch.view < len(sensors)):
        raise UserError(f"render_pixels: sensor index {batch.view} out of range (0..{len(sensors) - 1})")
    w, h = batch.image_size
    for i, s in enumerate(sensors):
        film = s.film()
        size = tuple(int(v) for v in film.size())
        if size != (w, h):
            raise UserError(f"render_pixels: sensor {i} has a {size[0]}x{size[1]} film, the sampler {w}x{h}")
        if tuple(film.crop_size()) != tuple(film.size()) or tuple(film.crop_offset()) != (0, 0):
            raise UserError(f"render_pixels: sensor {i} uses a crop window (not supported)")
        if film.sample_border():
            raise UserError(f"render_pixels: sensor {i} has sample_border enabled (not supported)")
        rf = film.rfilter()
        if rf.class_name() != "BoxFilter":
            raise UserError(f"render_pixels: sensor {i}'s film uses the pixel filter {rf.class_name()}; "
                            "sparse rendering needs <rfilter type=\"box\"/> (a wider filter mixes neighbouring pixels)")
    return list(sensors)


def flat_sensor(sensors, n: int, channels: int):
    """A fresh flat sensor over ``sensors`` with a 1×n film (one per call, so that a
    pending backward pass keeps its own pixel indices)."""
    import mitsuba as mi
    import mitsuba.ad  # noqa: F401  (registers the 'flat_sensor' plugin)
    fmt = _PIXEL_FORMATS.get(channels)
    if fmt is None:
        raise UserError(f"render_pixels: films with {channels} channels are not supported (1, 3 or 4)")
    sensor = mi.load_dict({
        "type": "flat_sensor",
        "film": {"type": "hdrfilm", "width": n, "height": 1, "pixel_format": fmt,
                 "component_format": "float32", "sample_border": False, "rfilter": {"type": "box"}},
        "sampler": {"type": "independent", "sample_count": 1},
    })
    sensor.initialize(sensors, n)
    return sensor


def render_pixels(scene, params, sensors, batch, spp: int = 4, spp_grad: int | None = None,
                  seed: int = 0, seed_grad: int | None = None, integrator=None, fallback: str = "error"):
    """Render the pixels of ``batch`` differentiably; returns an (N, C) ``mi.TensorXf``.

    ``sensors``: the list of sensors the sampler's views index (or one sensor).
    ``params``: the ``mi.SceneParameters`` being optimized (passed to ``mi.render``
    so that RB integrators run their adjoint pass). A ``full`` batch renders
    with the real sensor. ``fallback="full"`` renders integrators that need
    the real film (see :func:`film_incompatibility`) as a full image and
    gathers the pixels (correct, not cheaper); the default raises UserError.
    """
    sensors = _check_sensors(sensors, batch)
    if fallback not in ("error", "full"):
        raise UserError(f"render_pixels: fallback must be 'error' or 'full', got {fallback!r}")
    if isinstance(spp, bool) or not isinstance(spp, int) or spp < 1:
        raise UserError(f"render_pixels: spp must be an integer >= 1, got {spp!r}")
    spp_grad = spp if not spp_grad else spp_grad
    seed_grad = seed + 1 if seed_grad is None else seed_grad
    sensor = sensors[batch.view] if batch.view is not None else None
    return render_indices(scene, params, sensors, sensor, batch.pixel_index, batch.flat_index,
                          batch.full, spp, spp_grad, seed, seed_grad, integrator, fallback)


def render_indices(scene, params, sensors, sensor, pixel_index, flat_index, full: bool, spp: int,
                   spp_grad: int, seed, seed_grad, integrator=None, fallback: str = "error"):
    """:func:`render_pixels` after its checks: the pixels ``pixel_index`` of ``sensor``'s
    image, which are ``flat_index`` (view·P + pixel) of the flat sensor over ``sensors``
    (``sensors`` may also be such a flat sensor, its ``pixel_idx`` already set).
    ``sensor`` may be None where the flat sensor serves (``flat_index`` only), as it must for a
    batch over several views.
    ``seed`` may be an opaque ``mi.UInt32`` (``seed_grad = 0`` then lets ``mi.render``
    derive the gradient seed), so that ``dr.freeze`` can record a step that calls it."""
    import drjit as dr
    import mitsuba as mi
    integ = integrator if integrator is not None else scene.integrator()
    own_sparse = getattr(integ, "render_pixels", None)
    if sensor is None:                        # the flat sensor only (a batch over several views)
        if own_sparse is not None:
            raise UserError(f"render_pixels: integrator {type(integ).__name__} cannot render a batch over "
                            "several views (view_choice \"all\"): it renders the pixels of one view at a time")
        sensor = sensors if isinstance(sensors, mi.Sensor) else sensors[0]
    channels = sensor.film().base_channels_count()
    if own_sparse is not None and not full:
        # Integrators that render whole images themselves (sdf_reparam, sdf_naive) take
        # the pixel list directly: one differentiable pass, no flat sensor.
        return own_sparse(scene, sensor, mi.UInt32(pixel_index), seed=seed, spp=spp)
    reason = None if full else film_incompatibility(integ)
    if full or (reason is not None and fallback == "full"):
        image = mi.render(scene, params, sensor=sensor, integrator=integ, spp=spp, spp_grad=spp_grad,
                          seed=seed, seed_grad=seed_grad)
        c = image.shape[2]
        flat = mi.TensorXf(image.array, (dr.width(image.array) // c, c))
        return flat if full else gather_pixels(flat, pixel_index)
    if reason is not None:
        name = type(integ).__name__
        raise UserError(f"render_pixels: integrator {name} cannot render sparse pixels through a flat sensor: "
                        f"{reason}; use the full sampler or fallback='full'")
    n = dr.width(flat_index)
    if isinstance(sensors, mi.Sensor):        # a flat sensor made by the caller, pixels set
        flat = sensors
    else:
        flat = flat_sensor(sensors, n, channels)
        flat.pixel_idx = mi.UInt32(flat_index)
        dr.eval(flat.pixel_idx)
    image = mi.render(scene, params, sensor=flat, integrator=integ, spp=spp, spp_grad=spp_grad,
                      seed=seed, seed_grad=seed_grad)
    return mi.TensorXf(image.array, (n, image.shape[2]))


def gather_pixels(image, pixel_index):
    """Rows ``pixel_index`` of an (P, C) tensor, or pixels of an (H, W, C) one, as (N, C)
    (differentiable ``dr.gather``)."""
    import drjit as dr
    import mitsuba as mi
    c = image.shape[-1]
    n = dr.width(pixel_index)
    idx = dr.repeat(mi.UInt32(pixel_index) * c, c) + dr.tile(dr.arange(mi.UInt32, c), n)
    return mi.TensorXf(dr.gather(mi.Float, image.array, idx), (n, c))


def render_pixels_tangent(scene, params, sensors, batch, keys, spp: int = 4, seed: int = 0,
                          direction_seed: int = 0, scales=None, integrator=None, eps=None):
    """Derivative of the batch's pixels along a random parameter direction.

    For the ``gradient`` statistic of the adaptive sampler (random
    projection): θ = θ0 + s·v with v ~ N(0, 1) per component of each key in
    ``keys`` (times ``scales[key]`` if given), seeded by ``direction_seed``;
    returns (values, tangent), both (N, C) and detached, tangent ≈ ∂I/∂s.
    E_v[(g·v)²] = ‖g‖² for any per-pixel gradient g, so the sampler's mean of
    (∂ℓ_p/∂I_p · tangent_p)² estimates ‖∂ℓ_p/∂θ‖².

    The tangent is a central difference, (I(θ0 + εv) − I(θ0 − εv)) / 2ε, of
    two primal renders of the batch with the same seed (ε = 1e-3·max(1, RMS θ)
    unless given). Forward-mode AD through ``mi.render``'s flat sensor would
    do the same in one pass, but with other AD graphs alive (an optimizer's
    variables) Mitsuba's ``prb`` aborted it ("tried to forward-propagate
    derivatives across edge … outside of the current dr.isolate_grad()
    scope"). The parameters are restored afterwards.
    """
    import drjit as dr
    import mitsuba as mi
    import numpy as np
    if not keys:
        raise UserError("render_pixels_tangent: no parameter keys given")
    rng = np.random.default_rng(int(direction_seed))
    base, direction = {}, {}
    sq, count = 0.0, 0
    for k in keys:
        if k not in params.keys():
            raise UserError(f"render_pixels_tangent: {k!r} is not a parameter of the scene")
        # a private handle: params[k] is the plugin's own storage, which the perturbed
        # value overwrites in place (restoring that object would be a no-op)
        value = type(params[k])(params[k])
        base[k] = value
        shape = dr.shape(value)
        v = rng.standard_normal(int(np.prod(shape))).astype(np.float32) * float((scales or {}).get(k, 1.0))
        if isinstance(value, mi.TensorXf):
            direction[k] = mi.TensorXf(v.reshape(shape))
        elif dr.depth(value) > 1:                       # Vector3f, Point3f, Color3f, ...
            direction[k] = dr.unravel(type(value), mi.Float(v))
        else:
            direction[k] = type(value)(v)
        a = np.array(dr.detach(value), dtype=np.float64).ravel()
        sq, count = sq + float(np.sum(a * a)), count + a.size
    if eps is None:
        eps = 1e-3 * max(1.0, float(np.sqrt(sq / max(count, 1))))
    out = []
    try:
        with dr.suspend_grad():
            for sign in (1.0, -1.0):
                for k in keys:
                    params[k] = type(base[k])(dr.detach(base[k])) + (sign * eps) * direction[k]
                params.update()
                out.append(render_pixels(scene, params, sensors, batch, spp=spp, seed=seed,
                                         integrator=integrator))
            tangent = mi.TensorXf((out[0].array - out[1].array) * (0.5 / eps), out[0].shape)
            values = mi.TensorXf(0.5 * (out[0].array + out[1].array), out[0].shape)
            dr.eval(values, tangent)
    finally:
        for k, value in base.items():
            params[k] = value
        params.update()
    return values, tangent
