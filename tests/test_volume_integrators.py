"""The rvs / rvs_hier / volquad plugins: analytic cases, unbiasedness, FD gradients, errors."""
import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

from rvs_mi.validate.fd import fd_check
from rvs_mi.volume.scene import load_volume_scene, volume_scene_dict
from rvs_mi.volume.spline import Spline, knot_positions

ALL = ["rvs", "rvs_hier", "volquad"]
DENSE = {"rvs": {"knots": 256, "samples": 4}, "rvs_hier": {"coarse_knots": 128, "fine_samples": 64},
         "volquad": {"knots": 1024}}
SMALL = {"rvs": {"knots": 32, "samples": 4}, "rvs_hier": {"coarse_knots": 32, "fine_samples": 16},
         "volquad": {"knots": 32}}


def _random_fields(seed=1, res=8, channels=12):
    rng = np.random.default_rng(seed)
    dens = rng.uniform(0.2, 3.0, (res, res, res)).astype(np.float32)
    rad = rng.uniform(-0.3, 1.0, (res, res, res, channels)).astype(np.float32)
    rad[..., :3] += 0.6
    return dens, rad


# -- analytic: homogeneous slab seen head-on --------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_homogeneous_box_value_and_derivative(name):
    sigma, L = 0.7, 2.0
    c = np.array([0.2, 0.5, 0.9])
    scene = load_volume_scene(np.full((4, 4, 4), sigma), c, name, DENSE[name], resolution=(8, 8))
    params = mi.traverse(scene)
    key = "volume.density.data"
    base = mi.TensorXf(params[key])
    s = mi.Float(0.0)
    dr.enable_grad(s)
    params[key] = base + s                      # d/dσ of a uniform density
    params.update()
    image = mi.render(scene, params, spp=2, seed=1, seed_grad=2)
    dr.forward(s)
    value, grad = np.array(image), np.array(dr.grad(image))
    assert np.allclose(value, c * (1 - np.exp(-sigma * L)), atol=1e-3, rtol=0)
    assert np.allclose(grad, c * L * np.exp(-sigma * L), rtol=1e-2, atol=0)
    # reverse mode gives the same derivative of the image sum
    s2 = mi.Float(0.0)
    dr.enable_grad(s2)
    params[key] = base + s2
    params.update()
    dr.backward(dr.sum(mi.render(scene, params, spp=2, seed=1, seed_grad=2), axis=None))
    assert abs(dr.grad(s2)[0] - grad.sum()) <= 1e-2 * abs(grad.sum())


RADIANCE_ACTIVATIONS = {"none": lambda c: c, "relu": lambda c: np.maximum(c, 0),
                        "clamp": lambda c: np.clip(c, 0, 1), "sigmoid": lambda c: 1 / (1 + np.exp(-c))}
RADIANCE_SLOPES = {"none": lambda c: np.ones_like(c), "relu": lambda c: (c > 0) * 1.0,
                   "clamp": lambda c: ((c > 0) & (c < 1)) * 1.0,
                   "sigmoid": lambda c: np.exp(-c) / (1 + np.exp(-c)) ** 2}


@pytest.mark.parametrize("activation", list(RADIANCE_ACTIVATIONS))
def test_radiance_activation_value_and_derivative(activation):
    """Slab of raw radiance c: value act(c)·(1 − e^{−σL}), d/dc = act'(c)·(1 − e^{−σL})."""
    sigma, L = 0.7, 2.0
    c = np.array([-0.6, 0.4, 1.7])
    scene = load_volume_scene(np.full((4, 4, 4), sigma), c, "rvs",
                              {**DENSE["rvs"], "radiance_activation": activation}, resolution=(4, 4))
    params = mi.traverse(scene)
    key = "volume.radiance.data"
    base = mi.TensorXf(params[key])
    s = mi.Float(0.0)
    dr.enable_grad(s)
    params[key] = base + s
    params.update()
    image = mi.render(scene, params, spp=1, seed=1, seed_grad=2)
    dr.forward(s)
    opacity = 1 - np.exp(-sigma * L)
    assert np.allclose(np.array(image), RADIANCE_ACTIVATIONS[activation](c) * opacity, atol=1e-3, rtol=0)
    assert np.allclose(np.array(dr.grad(image)), RADIANCE_SLOPES[activation](c) * opacity, atol=1e-4,
                       rtol=1e-3)


def test_knots_zero_is_one_per_voxel():
    """knots = 0 follows the density grid: ⌈√(X²+Y²+Z²)⌉ knots, also after a resolution change."""
    dens, rad = _random_fields(seed=4, res=4, channels=3)
    renders = {}
    for knots in (0, 7, 14):       # √48 → 7; at 8³, √192 → 14
        scene = load_volume_scene(dens, rad, "rvs", {"knots": knots, "samples": 4}, resolution=(8, 8))
        renders[knots] = (scene, np.array(mi.render(scene, spp=1, seed=3)))
    assert np.array_equal(renders[0][1], renders[7][1])
    assert not np.allclose(renders[0][1], renders[14][1], atol=1e-6)
    for knots in (0, 14):
        params = mi.traverse(renders[knots][0])
        params["volume.density.data"] = dr.resample(params["volume.density.data"], (8, 8, 8, 1))
        params.update()
    assert np.array_equal(np.array(mi.render(renders[0][0], spp=1, seed=3)),
                          np.array(mi.render(renders[14][0], spp=1, seed=3)))


@pytest.mark.parametrize("name", ["rvs", "volquad"])
def test_background_and_surface_clipping(name):
    """Environment behind the slab is attenuated; an opaque rectangle mid-box halves L."""
    sigma, L = 0.7, 2.0
    c, bg = np.array([0.2, 0.5, 0.9]), np.array([0.3, 0.1, 0.2])
    scene = load_volume_scene(np.full((4, 4, 4), sigma), c, name, DENSE[name], resolution=(4, 4),
                              background=bg)
    img = np.array(mi.render(scene, spp=1))
    assert np.allclose(img, c * (1 - np.exp(-sigma * L)) + bg * np.exp(-sigma * L), atol=1e-3)
    wall = {"wall": {"type": "rectangle", "to_world": mi.ScalarTransform4f().scale(3),
                     "bsdf": {"type": "diffuse"}}}    # at z = 0, facing +z (the camera)
    scene = load_volume_scene(np.full((4, 4, 4), sigma), c, name, DENSE[name], resolution=(4, 4),
                              background=bg, extra=wall)
    img = np.array(mi.render(scene, spp=1))
    assert np.allclose(img, c * (1 - np.exp(-sigma * L / 2)), atol=1e-3)


# -- unbiasedness against a dense quadrature on the same spline ------------------------------

def _pixel_rays(scene, res):
    xs = (np.arange(res) + 0.5) / res
    X, Y = np.meshgrid(xs, xs)
    ray, _ = scene.sensors()[0].sample_ray(0.0, 0.0, mi.Point2f(mi.Float(X.ravel()), mi.Float(Y.ravel())),
                                           mi.Point2f(0.5))
    return ray


def _dense_reference(integ, scene, ray, dense=4096):
    """C on the (unjittered) spline of ``integ`` by 4096-interval quadrature of p̂(t)·c(t)."""
    n = dr.width(ray.o)
    ray0, length, behind = integ.interval(scene, mi.Ray3f(ray), mi.Bool(True))
    t = knot_positions(dr.zeros(mi.Float, n), length, integ.knots)
    p, _ = integ.ray_points(ray0, t, integ.knots)
    spline = Spline(t, integ.sigma_at(integ.density, p), integ.knots)
    edges = knot_positions(dr.zeros(mi.Float, n), length, dense + 1)
    owner = dr.arange(mi.UInt32, n * (dense + 1)) // (dense + 1)
    F = np.array(1 - dr.exp(-spline.cumulative(edges, owner)), dtype=np.float64).reshape(n, dense + 1)
    w = np.diff(F, axis=1)
    e = np.array(edges).reshape(n, dense + 1)
    mids = mi.Float(0.5 * (e[:, 1:] + e[:, :-1]).ravel())
    pm, dm = integ.ray_points(ray0, mids, dense)
    c = np.stack([np.array(x, dtype=np.float64) for x in integ.radiance_at(pm, dm)], -1).reshape(n, dense, 3)
    T = np.array(spline.transmittance(), dtype=np.float64)[:, None]
    return np.einsum("nk,nkc->nc", w, c) + T * np.array(behind, dtype=np.float64).T


@pytest.mark.parametrize("stratified", [True, False])
def test_rvs_is_unbiased_per_pixel(stratified):
    dens, rad = _random_fields(seed=4, res=6, channels=27)
    scene = load_volume_scene(dens, rad, "rvs", {"knots": 24, "samples": 2, "jitter": False,
                                                 "stratified": stratified},
                              camera="perspective", origin=(1.2, 0.8, 3.5), fov=40, background=(0.2, 0.1, 0.3))
    integ = scene.integrator()
    res, runs = 6, 512
    ray = _pixel_rays(scene, res)
    n = res * res
    ref = _dense_reference(integ, scene, ray)
    # one wavefront holding `runs` independent copies of every pixel ray
    idx = dr.arange(mi.UInt32, n * runs) % n
    rays = mi.Ray3f(dr.gather(mi.Point3f, ray.o, idx), dr.gather(mi.Vector3f, ray.d, idx))
    sampler = mi.load_dict({"type": "independent"})
    sampler.seed(7, n * runs)
    with dr.suspend_grad():
        L, *_ = integ.sample(dr.ADMode.Primal, scene, sampler, rays)
    est = np.array(L, dtype=np.float64).T.reshape(runs, n, 3)
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(runs)
    hit = se > 1e-9                               # rays that miss the box have no noise
    assert hit.mean() > 0.5
    assert np.allclose(mean[~hit], ref[~hit], atol=1e-5)
    mean, se, ref = mean[hit], se[hit], ref[hit]
    z = (mean - ref) / se
    assert np.mean(np.abs(z) <= 3) >= 0.98, np.sort(np.abs(z).ravel())[-10:]
    assert np.max(np.abs(z)) < 5
    assert 0.6 < np.mean(z ** 2) < 1.5          # the standard errors are honest
    # a biased estimator would be caught: 1% too bright fails
    z_bad = (mean * 1.01 - ref) / se
    assert np.mean(np.abs(z_bad) <= 3) < 0.98 or np.max(np.abs(z_bad)) >= 5


# -- finite differences -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fd_scenes():
    dens, rad = _random_fields()
    return {name: load_volume_scene(dens, rad, name, SMALL[name], resolution=(16, 16), camera="perspective",
                                    origin=(1.5, 1.0, 4.0), fov=45, background=(0.1, 0.2, 0.3))
            for name in ALL}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("field", ["density", "radiance"])
def test_fd_gradients(fd_scenes, name, field):
    # seed >= 1: fd_check's AD render uses seed_grad=seed, and Mitsuba replaces
    # seed_grad=0 by a hash, which would decorrelate AD from the FD renders.
    # direction_seed=1: with 0 the reverse-mode scalar Σ FD·w of rvs_hier nearly
    # cancels (0.015 against Σ|FD·w| = 2.8), which makes its relative error meaningless.
    # rvs_hier moves its fine density look-ups with θ across trilinear kinks: a smaller
    # step keeps the central difference in its linear range (2.2% at 1e-3, 0.4% at 3e-4).
    eps = 3e-4 if name == "rvs_hier" else None
    result = fd_check(fd_scenes[name], f"volume.{field}.data", spp=4, seed=1, direction_seed=1, eps=eps)
    rep = result.report
    assert np.all(np.isfinite(result.ad))
    assert rep["forward"]["relative_error"] < 0.03, rep["forward"]
    assert rep["forward"]["correlation"] > 0.999
    assert rep["backward"]["relative_error"] < 0.03, rep["backward"]
    # reverse mode is deterministic (Dr.Jit's Expand scatter mode is off in render_backward)
    again = fd_check(fd_scenes[name], f"volume.{field}.data", spp=4, seed=1, direction_seed=1, eps=eps,
                     mode="backward")
    assert again.report["backward"]["ad"] == pytest.approx(rep["backward"]["ad"], rel=1e-5)


def test_fd_gradients_through_radiance_activation():
    dens, rad = _random_fields()
    scene = load_volume_scene(dens, rad, "rvs", {**SMALL["rvs"], "radiance_activation": "sigmoid",
                                                 "density_activation": "softplus"},
                              resolution=(16, 16), camera="perspective", origin=(1.5, 1.0, 4.0), fov=45)
    for field in ("density", "radiance"):
        rep = fd_check(scene, f"volume.{field}.data", spp=4, seed=1, direction_seed=1).report
        assert rep["forward"]["relative_error"] < 0.03, (field, rep["forward"])
        assert rep["backward"]["relative_error"] < 0.03, (field, rep["backward"])


# -- parameter updates -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_grid_resolution_change_through_params_update(name):
    dens, rad = _random_fields(seed=2, res=4, channels=27)
    scene = load_volume_scene(dens, rad, name, SMALL[name], resolution=(8, 8))
    params = mi.traverse(scene)
    for key, shape in (("volume.density.data", (8, 8, 8, 1)), ("volume.radiance.data", (8, 8, 8, 27))):
        params[key] = dr.resample(params[key], shape)
        params.update()
        assert tuple(params[key].shape) == shape
    # a constant field at the new resolution gives the analytic slab value
    params["volume.density.data"] = dr.full(mi.TensorXf, 0.5, (16, 16, 16, 1))
    sh = np.zeros((2, 2, 2, 27), np.float32)
    sh[..., :3] = 1 / 0.28209479                     # Y_00 = 0.2821: radiance 1 in every direction
    params["volume.radiance.data"] = mi.TensorXf(sh)
    params.update()
    img = np.array(mi.render(scene, spp=1))
    assert np.allclose(img, 1 - np.exp(-0.5 * 2.0), atol=2e-3)
    # and gradients flow into the replaced tensor
    x = dr.full(mi.TensorXf, 0.5, (3, 3, 3, 1))
    dr.enable_grad(x)
    params["volume.density.data"] = x
    params.update()
    dr.backward(dr.sum(mi.render(scene, params, spp=1, seed=1, seed_grad=2), axis=None))
    g = dr.grad(params["volume.density.data"])
    assert g.shape == (3, 3, 3, 1) and np.abs(np.array(g)).sum() > 0


# -- edge cases and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", ["zero", "opaque", "negative"])
def test_no_nan_edge_cases(name, case):
    rng = np.random.default_rng(3)
    dens = {"zero": np.zeros((4, 4, 4)), "opaque": np.full((4, 4, 4), 1e5),
            "negative": rng.uniform(-2, 2, (4, 4, 4))}[case]
    # a small box in a wider view: some rays miss it
    scene = load_volume_scene(dens, rng.uniform(0, 1, (4, 4, 4, 3)), name, SMALL[name], resolution=(8, 8),
                              box_min=(-0.5, -0.5, -0.5), box_max=(0.5, 0.5, 0.5), ortho_scale=1.0,
                              background=(0.5, 0.5, 0.5))
    params = mi.traverse(scene)
    for key in ("volume.density.data", "volume.radiance.data"):
        dr.enable_grad(params[key])
    params.update()
    img = mi.render(scene, params, spp=1, seed=1, seed_grad=2)
    dr.backward(dr.sum(img, axis=None))
    assert np.all(np.isfinite(np.array(img)))
    assert np.allclose(np.array(img)[0, 0], 0.5)            # corner ray misses the box
    for key in ("volume.density.data", "volume.radiance.data"):
        assert np.all(np.isfinite(np.array(dr.grad(params[key])))), key


@pytest.mark.parametrize("name, options, message", [
    ("rvs", {"knots": 1}, "knots must be 0 .* or >= 2"),
    ("rvs", {"radiance_activation": "softplus"}, "unknown radiance_activation"),
    ("rvs", {"samples": 0}, "samples must be >= 1"),
    ("volquad", {"knots": -1}, "knots must be >= 0"),
    ("rvs_hier", {"coarse_knots": 1}, "coarse_knots must be 0 .* or >= 2"),
    ("rvs_hier", {"fine_samples": 0}, "fine_samples must be >= 1"),
    ("rvs", {"density_activation": "sigmoid"}, "unknown density_activation"),
])
def test_invalid_parameters(name, options, message):
    with pytest.raises(ValueError, match=message):
        load_volume_scene(np.ones((2, 2, 2)), (1, 1, 1), name, options)


def test_invalid_fields():
    with pytest.raises(ValueError, match="radiance.*4 channels"):
        load_volume_scene(np.ones((2, 2, 2)), np.ones((2, 2, 2, 4)), "rvs")
    with pytest.raises(ValueError, match="non-finite"):
        load_volume_scene(np.full((2, 2, 2), np.nan), (1, 1, 1), "rvs")
    # the same checks when the plugin gets its children from a scene dict/XML
    d = volume_scene_dict(np.ones((2, 2, 2)), (1, 1, 1), "volquad")
    d["integrator"]["density"]["grid"] = mi.VolumeGrid(np.ones((2, 2, 2, 3), np.float32))
    with pytest.raises(Exception, match="density.*3 channels"):
        mi.load_dict(d)
    scene = load_volume_scene(np.ones((2, 2, 2)), (1, 1, 1), "rvs")
    params = mi.traverse(scene)
    params["volume.density.data"] = dr.full(mi.TensorXf, np.inf, (2, 2, 2, 1))
    with pytest.raises(ValueError, match="non-finite"):
        params.update()
    params = mi.traverse(scene)
    params["volume.density.data"] = dr.full(mi.TensorXf, 1.0, (2, 2, 2, 1))
    params["volume.radiance.data"] = dr.full(mi.TensorXf, 1.0, (2, 2, 2, 5))
    with pytest.raises(ValueError, match="5 channels"):
        params.update()


def test_activations_match_their_definition():
    from rvs_mi.volume.fields import activate
    x = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
    X = mi.Float(x)
    assert np.allclose(np.array(activate(X, "none")), np.maximum(x, 0))
    assert np.allclose(np.array(activate(X, "relu")), np.maximum(x, 0))
    assert np.allclose(np.array(activate(X, "softplus")), np.log1p(np.exp(x)), rtol=1e-6)
    assert np.allclose(np.array(activate(X, "exp")), np.exp(x), rtol=1e-6)


def test_xml_scene_and_ray_data_loader(tmp_path):
    """The shipped XML scene loads; rvs renders through RayDataLoader's flat sensor with gradients."""
    from rvs_mi import scenes
    from rvs_mi.scene import load_scene
    scene = load_scene(scenes.path("volume_blob.xml"), {"res": "16"})
    params = mi.traverse(scene)
    assert "volume.density.data" in params.keys() and "volume.radiance.data" in params.keys()
    full = mi.render(scene, spp=1)
    loader = mi.ad.RayDataLoader(scene.sensors()[0], full, pixels_per_batch=64, tile_size=4)
    target, sensor = loader.next()
    dr.enable_grad(params["volume.density.data"])
    params.update()
    img = mi.render(scene, params, sensor=sensor, spp=1, seed=1, seed_grad=2)
    assert img.shape == (1, 64, 3)
    dr.backward(dr.sum(dr.square(img - target), axis=None))
    g = np.array(dr.grad(params["volume.density.data"]))
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
