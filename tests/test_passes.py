"""Memory-bounded rendering in passes (rvs_mi.passes): the plan covers the image once, and
renders in passes are the same estimator, with gradients that match finite differences."""
import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

from rvs_mi.passes import one_pass, pass_seed, plan
from rvs_mi.validate.fd import fd_check
from rvs_mi.volume.scene import volume_scene_dict


@pytest.mark.parametrize("width,height,spp,budget", [(16, 12, 4, 0), (16, 12, 4, 10**6), (16, 12, 4, 100),
                                                      (16, 12, 64, 100), (7, 5, 3, 20), (16, 12, 3, 5),
                                                      (32, 4, 16384, 262144), (8, 2, 12, 40)])
def test_plan_covers_every_pixel_sample_once(width, height, spp, budget):
    bands = plan(width, height, spp, budget)
    count = np.zeros((height,), dtype=int)
    for row0, rows, samples in bands:
        assert rows >= 1 and samples >= 1 and spp % samples == 0
        count[row0:row0 + rows] += spp                  # spp / samples passes of samples each
        assert width * rows * samples <= max(budget, width) or budget == 0
    assert np.all(count == spp)
    assert one_pass(bands, spp) == (budget == 0 or width * height * spp <= budget)


def test_pass_seeds_keep_the_first_and_differ_after():
    assert pass_seed(5, 0) == 5
    seeds = {int(pass_seed(s, k)[0]) for s in (5, 6) for k in range(1, 50)}
    assert len(seeds) == 98 and 5 not in seeds


def _volume_scene(pass_rays, rfilter="box"):
    rng = np.random.default_rng(4)
    dens = rng.uniform(0.2, 3.0, (8, 8, 8)).astype(np.float32)
    rad = rng.uniform(0.0, 1.0, (8, 8, 8, 3)).astype(np.float32)
    d = volume_scene_dict(dens, rad, "rvs", {"knots": 24, "samples": 4, "pass_rays": pass_rays},
                          resolution=(16, 12), camera="perspective", origin=(1.5, 1.0, 4.0), fov=45,
                          background=(0.1, 0.2, 0.3))
    d["sensor"]["film"]["rfilter"] = {"type": rfilter}
    return mi.load_dict(d)


@pytest.mark.parametrize("rfilter", ["box", "gaussian"])
def test_volume_render_in_passes_is_the_same_estimator(rfilter):
    """At 64 spp an image rendered in 1-row passes of 16 samples per pixel differs from a one-pass
    render by no more than two one-pass renders with different seeds differ (missing, doubled or
    misnormalized passes would differ by the image itself)."""
    whole, split = _volume_scene(0, rfilter), _volume_scene(260, rfilter)
    assert plan(16, 12, 64, 260)[5] == (5, 1, 16)     # 12 rows, each in 4 passes of 16 samples
    a = np.array(mi.render(whole, spp=64, seed=1))
    b = np.array(mi.render(whole, spp=64, seed=2))
    c = np.array(mi.render(split, spp=64, seed=1))
    noise = np.abs(a - b).mean()
    assert 0 < noise < 0.05 * np.abs(a).mean()
    assert np.abs(c - a).mean() < 1.6 * noise
    assert abs(c.mean() - a.mean()) < 0.5 * noise
    again = np.array(mi.render(split, spp=64, seed=1))
    # same seed and pass size: the same samples (a Gaussian filter's splats into neighbouring
    # pixels are summed by threads in varying order: equal up to float rounding)
    assert np.abs(c - again).max() < 1e-5


@pytest.mark.parametrize("field", ["density", "radiance"])
def test_volume_gradients_in_passes_match_finite_differences(field):
    scene = _volume_scene(97)
    assert not one_pass(plan(16, 12, 4, 97), 4)
    rep = fd_check(scene, f"volume.{field}.data", spp=4, seed=1, direction_seed=1).report
    assert rep["forward"]["relative_error"] < 0.03, rep["forward"]
    assert rep["backward"]["relative_error"] < 0.03, rep["backward"]


def test_forward_and_reverse_passes_are_adjoint():
    """⟨w, J·δ⟩ (forward mode) equals ⟨Jᵀ·w, δ⟩ (reverse mode) for renders in passes with the
    same seed, up to float rounding: both see the same samples."""
    scene = _volume_scene(97)
    params = mi.traverse(scene)
    key = "volume.density.data"
    rng = np.random.default_rng(0)
    delta = mi.TensorXf(rng.normal(size=params[key].shape).astype(np.float32))
    w = mi.TensorXf(rng.normal(size=(12, 16, 3)).astype(np.float32))
    theta = params[key]
    dr.enable_grad(theta)
    params.update()
    dr.set_grad(theta, delta)
    tangent = scene.integrator().render_forward(scene, params, 0, seed=3, spp=4)
    forward = float(np.sum(np.array(tangent) * np.array(w)))
    dr.set_grad(theta, 0)
    scene.integrator().render_backward(scene, params, w, 0, seed=3, spp=4)
    backward = float(np.sum(np.array(dr.grad(theta)) * np.array(delta)))
    assert forward == pytest.approx(backward, rel=1e-4)
    assert abs(forward) > 1e-3


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_sdf_render_in_passes_keeps_the_perimeter_gradient(mode):
    """Emissive sphere of radius r, orthographic 32² film over [-1, 1]²: Σ pixels is the disc's
    area and d(Σ pixels)/dr its perimeter (in pixels), also when rendered in 7 passes (with the
    boundary warp and its pixel-edge terms in every pass)."""
    from rvs_mi import scenes
    from rvs_mi.scene import load_scene
    r, res, spp = 0.6, 32, 64      # 64 spp: the gradient's standard deviation is ~1% of it
    px_per_area = (res / 2.0) ** 2
    scene = load_scene(scenes.path("sdf_sphere.xml"), {"integrator": "sdf_reparam", "res": str(res)})
    scene.integrator().pass_rays = 12000
    assert len(plan(res, res, spp, 12000)) == 7
    params = mi.traverse(scene)
    radius = mi.Float(r)
    dr.enable_grad(radius)
    params["integrator.sdf.radius"] = radius
    params.update()
    image = mi.render(scene, params, spp=spp, seed=1)
    total = dr.sum(image, axis=None)
    expected = 2 * np.pi * r * px_per_area
    assert abs(float(total.array[0]) / 3 - np.pi * r * r * px_per_area) < 0.01 * expected * r
    if mode == "forward":
        dr.forward(radius)
        grad = float(dr.grad(total).array[0]) / 3
    else:
        dr.backward(total)
        grad = float(dr.grad(radius)[0]) / 3
    assert abs(grad - expected) < 0.03 * expected


@pytest.mark.parametrize("value", [-1, 2.5, "many"])
def test_bad_pass_rays_is_refused_in_one_line(value):
    from rvs_mi.errors import UserError
    from rvs_mi.volume.scene import load_volume_scene
    with pytest.raises(UserError, match="pass_rays") as info:
        load_volume_scene(np.ones((2, 2, 2)), (1, 1, 1), "rvs", {"pass_rays": value})
    assert "\n" not in str(info.value)


def test_sdf_forward_passes_carry_a_derived_parameters_tangent():
    """Forward mode in passes: a parameter computed from θ (radius = θ/2 + 0.3) passes its
    tangent to every pass; the perimeter gradient is then half of dr/dθ = 1's."""
    from rvs_mi import scenes
    from rvs_mi.scene import load_scene
    r, res, spp = 0.6, 32, 64
    expected = 0.5 * 2 * np.pi * r * (res / 2.0) ** 2
    scene = load_scene(scenes.path("sdf_sphere.xml"), {"integrator": "sdf_reparam", "res": str(res)})
    scene.integrator().pass_rays = 12000
    params = mi.traverse(scene)
    theta = mi.Float(2 * (r - 0.3))
    dr.enable_grad(theta)
    params["integrator.sdf.radius"] = 0.5 * theta + 0.3
    params.update()
    total = dr.sum(mi.render(scene, params, spp=spp, seed=1), axis=None)
    dr.forward(theta)
    grad = float(dr.grad(total).array[0]) / 3
    assert abs(grad - expected) < 0.03 * expected, (grad, expected)
