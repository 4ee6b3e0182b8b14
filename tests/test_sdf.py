"""SDF integrators (Bangaru et al. 2022): analytic boundary gradient, finite differences, bad input.

Finite differences use a stratified sampler with many samples and a small
step: with the same seed on both sides, the FD image of a moving silhouette
is the fraction of sub-pixel strata it sweeps, and a small step keeps the FD
from smearing a silhouette that lies near a pixel edge into the next pixel.
"""
import subprocess
import sys

import numpy as np
import pytest

from rvs_mi import cli, scenes
from rvs_mi.scene import load_scene
from rvs_mi.validate.fd import compare_gradients, fd_check

RES = 32
AD_SPP = 64
FD_SPP = 4096          # 64 x 64 strata per pixel
FD_EPS = 5e-3
TOL = 0.10             # relative error of the gradient image vs central FD


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """A 3-D noise albedo and a constant white one (for coverage images)."""
    import mitsuba as mi
    from rvs_mi.figures.noise import write_noise_albedo
    folder = tmp_path_factory.mktemp("sdf")
    noise = write_noise_albedo(str(folder / "noise.vol"), res=16, seed=0)
    white = str(folder / "white.vol")
    mi.VolumeGrid(np.ones((4, 4, 4, 3), np.float32)).write(white)
    return {"noise": noise, "white": white}


def _torus(volumes, integrator="sdf_reparam", **defines):
    d = {"integrator": integrator, "res": str(RES), "albedo_file": volumes["noise"],
         "sampler": "stratified"}
    d.update({k: str(v) for k, v in defines.items()})
    return load_scene(scenes.path("sdf_torus.xml"), d)


def _sphere_persp(integrator="sdf_reparam", **defines):
    d = {"integrator": integrator, "res": str(RES), "sampler": "stratified"}
    d.update({k: str(v) for k, v in defines.items()})
    return load_scene(scenes.path("sdf_sphere_persp.xml"), d)


def _coverage_mask(scene, spp=1024):
    """Silhouette pixels: partly covered (scene must be emissive white on black)."""
    import mitsuba as mi
    cov = np.array(mi.render(scene, spp=spp, seed=11))[..., 0]
    return (cov > 0.01) & (cov < 0.99)


def _forward_ad(scene, key, direction, spp=AD_SPP, seed=1):
    """Forward-mode AD image dI/ds for θ = θ0 + s·direction (as fd_check does).

    seed ≥ 1: mi.render replaces seed_grad = 0 by a hash, which would decorrelate
    the derivative pass from a finite difference rendered with the same seed.
    """
    import drjit as dr
    import mitsuba as mi
    params = mi.traverse(scene)
    base = type(params[key])(params[key])
    try:
        s = mi.Float(0.0)
        dr.enable_grad(s)
        params[key] = base + s * direction
        params.update()
        img = mi.render(scene, params, seed=seed + 1, seed_grad=seed, spp=spp, spp_grad=spp)
        dr.forward(s)
        return np.array(dr.grad(img), dtype=np.float64)
    finally:
        params[key] = base
        params.update()


def _check(res, mask, label):
    """Forward-mode image within TOL of FD overall and on silhouettes; reverse mode agrees.

    Reverse mode gives Σ w·dI/ds for a random weight image w (fd_check). For
    a translation that sum nearly cancels, so it is compared relative to
    Σ |w·FD| (and must equal the forward image's Σ w·AD to float precision).
    """
    overall = res.report["forward"]["relative_error"]
    sil = compare_gradients(res.ad, res.fd, mask=mask)["relative_error"]
    back = res.report["backward"]
    w = np.random.default_rng(back["weight_seed"]).uniform(0, 1, res.fd.shape)
    scale = float(np.sum(np.abs(w * res.fd)))
    back_fd = abs(back["ad"] - back["fd"]) / scale
    back_fwd = abs(back["ad"] - float(np.sum(w * res.ad))) / scale
    print(f"{label}: overall {overall:.4f}, silhouette {sil:.4f}, reverse vs FD {back_fd:.4f}, "
          f"reverse vs forward {back_fwd:.1e}", res.report["timings"])
    assert mask.sum() >= 20
    assert overall < TOL, res.report["forward"]
    assert sil < TOL
    assert back_fd < TOL, back
    assert back_fwd < 1e-3, back
    return sil


# ----------------------------------------------------------------------------- analytic
def test_emissive_sphere_radius_gradient_is_the_perimeter():
    """d(Σ pixels)/dr = 2π r L · (pixels per unit area); sdf_naive misses it entirely."""
    import drjit as dr
    import mitsuba as mi
    r, L = 0.6, 1.0
    px_per_area = (RES / 2.0) ** 2          # orthographic, film covers [-1, 1]^2
    expected = 2 * np.pi * r * L * px_per_area
    grads = {}
    for integrator in ("sdf_reparam", "sdf_naive"):
        scene = load_scene(scenes.path("sdf_sphere.xml"), {"integrator": integrator,
                                                             "res": str(RES)})
        params = mi.traverse(scene)
        radius = mi.Float(r)
        dr.enable_grad(radius)
        params["integrator.sdf.radius"] = radius
        params.update()
        image = mi.render(scene, params, spp=16, seed=1)
        total = dr.sum(image, axis=None)
        # primal: the disc's area in pixels
        assert abs(float(total.array[0]) / 3 - np.pi * r * r * L * px_per_area) < 0.01 * expected * r
        dr.backward(total)
        grads[integrator] = float(dr.grad(radius)[0]) / 3
    print("analytic", expected, grads)
    assert abs(grads["sdf_reparam"] - expected) < 0.03 * expected
    assert abs(grads["sdf_naive"]) < 0.01 * expected


# ------------------------------------------------------------------------ finite differences
def test_torus_major_radius_matches_fd_and_naive_fails_on_silhouettes(volumes):
    """Diffuse torus, 3-D noise albedo, perspective camera; gradient w.r.t. the major radius."""
    mask = _coverage_mask(_torus(volumes, albedo_file=volumes["white"], shading="emissive"))
    scene = _torus(volumes)
    key = "integrator.sdf.radius"
    res = fd_check(scene, key, eps=FD_EPS, spp=AD_SPP, fd_spp=FD_SPP, seed=1)
    _check(res, mask, "torus radius, sdf_reparam")
    import mitsuba as mi
    naive = _forward_ad(_torus(volumes, "sdf_naive"), key, mi.Float(1.0))
    e_naive = compare_gradients(naive, res.fd, mask=mask)["relative_error"]
    print(f"torus radius, sdf_naive: silhouette {e_naive:.4f}")
    assert e_naive > 3 * TOL


def test_sphere_center_translation_top_k_0_and_8_match_fd():
    """Translation along a random direction; top_k = 8 (Eq. 14) and top_k = 0 (all points)."""
    import mitsuba as mi
    from rvs_mi.validate.fd import _direction
    mask = _coverage_mask(_sphere_persp())
    key = "integrator.sdf.center"
    res = fd_check(_sphere_persp(top_k=8, epsilon=0.02), key, eps=FD_EPS, spp=AD_SPP, fd_spp=FD_SPP,
                   direction_seed=3)
    _check(res, mask, "sphere center, top_k=8")
    direction, _ = _direction(mi.traverse(_sphere_persp())[key], 3)
    all_points = _forward_ad(_sphere_persp(top_k=0), key, direction)
    e_all = compare_gradients(all_points, res.fd)["relative_error"]
    e_all_sil = compare_gradients(all_points, res.fd, mask=mask)["relative_error"]
    print(f"sphere center, top_k=0: overall {e_all:.4f}, silhouette {e_all_sil:.4f}")
    assert e_all < TOL and e_all_sil < TOL
    naive = _forward_ad(_sphere_persp("sdf_naive"), key, direction)
    e_naive = compare_gradients(naive, res.fd, mask=mask)["relative_error"]
    print(f"sphere center, sdf_naive: silhouette {e_naive:.4f}")
    assert e_naive > 3 * TOL


def _grid_scene(integrator, res_grid=8, **options):
    import mitsuba as mi
    n = res_grid
    c = (np.arange(n) + 0.5) / n * 2.0 - 1.0            # voxel centres in [-1, 1]
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    # an ellipsoid-like blob (approximately a distance)
    f = np.sqrt(x * x + (1.2 * y) ** 2 + z * z) - 0.55 + 0.05 * np.sin(3 * x) * np.cos(2 * z)
    return mi.load_dict({
        "type": "scene",
        "integrator": {
            "type": integrator, **options,
            "sdf": {"type": "gridvolume", "grid": mi.VolumeGrid(f[..., None].astype(np.float32)),
                    "use_grid_bbox": False,
                    "to_world": mi.ScalarTransform4f().translate([-1, -1, -1]).scale(2.0)},
            "albedo": {"type": "rgb", "value": [1.0, 1.0, 1.0]},
        },
        "sensor": {
            "type": "perspective", "fov": 30,
            "to_world": mi.ScalarTransform4f().look_at(origin=[0.3, 0.4, 4.5], target=[0, 0, 0],
                                                        up=[0, 1, 0]),
            "sampler": {"type": "stratified", "sample_count": 16},
            "film": {"type": "hdrfilm", "width": RES, "height": RES, "rfilter": {"type": "box"}},
        },
    })


def test_grid_sdf_values_random_direction_match_fd_and_naive_fails():
    """Grid SDF (8³, interpolating tricubic B-spline) values moved along a seeded random direction.

    The silhouette moves up to ~12 px per unit of the step here, so the FD
    step must stay small or a silhouette near a pixel edge is smeared into
    the next pixel; 96² strata per pixel for the FD, 512 spp for AD.
    Defaults: all tracer points (top_k = 0), epsilon 1e-3, max_steps 64,
    hit_epsilon 1e-3. Measured overall error: 3.9% (with 128² strata and
    1024 spp: 4.3%, and 3.4% with the smoothing spline; 11.8% when the tracer
    marches on f itself and its hits are refined onto the surface, its grazing
    rays stopping short of the tangent points).
    """
    import mitsuba as mi
    from rvs_mi.validate.fd import _direction
    scene = _grid_scene("sdf_reparam")
    mask = _coverage_mask(scene, spp=256)
    key = "integrator.sdf.data"
    res = fd_check(scene, key, eps=FD_EPS / 2, spp=512, fd_spp=96 * 96, direction_seed=5, seed=1)
    _check(res, mask, "grid values")
    direction, _ = _direction(mi.traverse(scene)[key], 5)
    naive = _forward_ad(_grid_scene("sdf_naive"), key, direction, spp=64)
    e_naive = compare_gradients(naive, res.fd, mask=mask)["relative_error"]
    print(f"grid values: sdf_naive silhouette error {e_naive:.4f}")
    assert e_naive > 3 * TOL


AREA_RES, AREA_SPP = 64, 256      # 16 x 16 strata per pixel


def _disc_area(scene):
    """Covered area of an orthographic view of [-1, 1]² (emissive white on black)."""
    import mitsuba as mi
    img = np.array(mi.render(scene, spp=AREA_SPP, seed=3), dtype=np.float64)[..., 0]
    return img.sum() * (2.0 / AREA_RES) ** 2


@pytest.mark.parametrize("max_steps, hit_epsilon", [(64, 1e-3), (32, 1e-2)])
def test_rendered_sphere_is_the_zero_level_set(max_steps, hit_epsilon):
    """The rendered disc of a sphere of radius 0.6 has area πr² within 0.05%.

    Marching on f itself and taking |f| < 1e-3 as a hit renders the level
    set f = 1e-3 (+0.31% in area, measured). With 32 steps the grazing rays
    need the larger threshold to converge (1e-3 leaves the disc 0.65% small).
    """
    d = {"res": str(AREA_RES), "sampler": "stratified", "radius": "0.6",
         "max_steps": str(max_steps), "hit_epsilon": str(hit_epsilon)}
    area = _disc_area(load_scene(scenes.path("sdf_sphere.xml"), d))
    assert abs(area / (np.pi * 0.36) - 1.0) < 5e-4, area


@pytest.mark.parametrize("spline, low, high", [("interpolating", -5e-4, 5e-4), ("smoothing", -0.02, -3e-3)])
def test_grid_of_sphere_distances_renders_that_sphere(spline, low, high):
    """A 32³ grid of a sphere's exact distances: the interpolating spline renders the sphere
    (area within 0.05%); the smoothing one (values as control points) a smaller one."""
    import mitsuba as mi
    n, r = 32, 0.6
    c = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    f = np.sqrt(x * x + y * y + z * z) - r
    scene = mi.load_dict({
        "type": "scene",
        "integrator": {"type": "sdf_naive", "sdf_spline": spline,
                       "sdf": {"type": "gridvolume", "grid": mi.VolumeGrid(f[..., None].astype(np.float32)),
                               "use_grid_bbox": False,
                               "to_world": mi.ScalarTransform4f().translate([-1, -1, -1]).scale(2.0)},
                       "albedo": {"type": "rgb", "value": [1.0, 1.0, 1.0]}},
        "sensor": {"type": "orthographic",
                   "to_world": mi.ScalarTransform4f().look_at(origin=[0, 0, 5], target=[0, 0, 0], up=[0, 1, 0]),
                   "sampler": {"type": "stratified", "sample_count": AREA_SPP},
                   "film": {"type": "hdrfilm", "width": AREA_RES, "height": AREA_RES, "rfilter": {"type": "box"}}},
    })
    rel = _disc_area(scene) / (np.pi * r * r) - 1.0
    print(f"grid sphere, {spline} spline: area {rel:+.4%}")
    assert low < rel < high


def test_sphere_depth_translation_orthographic_is_zero():
    """Orthographic view, sphere moving along the view axis: the image does not change.

    The warp must then vanish on the silhouette from both sides; with a large
    epsilon (0.02) the hit side averages only points in front of the tangent
    and the disc appears to grow (sum ≈ 19% of the lateral one, measured).
    """
    import drjit as dr
    import mitsuba as mi
    scene = load_scene(scenes.path("sdf_sphere.xml"), {"res": str(RES)})
    sums = {}
    for name, v in (("depth", (0.0, 0.0, 1.0)), ("lateral", (1.0, 0.0, 0.0))):
        grad = _forward_ad(scene, "integrator.sdf.center", mi.Vector3f(*v), spp=64)
        sums[name] = (float(grad.sum()), float(np.abs(grad).sum()))
    print("orthographic sphere translation (sum, sum|.|):", sums)
    assert abs(sums["depth"][0]) < 0.03 * sums["lateral"][1]


def test_albedo_texture_gradient_forward_and_reverse(volumes):
    """Diffuse torus: the 3-D albedo grid along a random direction (no silhouette motion)."""
    scene = _torus(volumes, sampler="independent")
    res = fd_check(scene, "integrator.albedo.data", eps=1e-2, spp=16, fd_spp=16, direction_seed=1, seed=1)
    fwd, back = res.report["forward"]["relative_error"], res.report["backward"]["relative_error"]
    print(f"albedo grid: forward {fwd:.4f}, reverse {back:.4f}")
    assert res.report["forward"]["norm_fd"] > 0
    assert fwd < 1e-3 and back < 1e-3


# ---------------------------------------------------------------------------- bad input
def _integrator_xml(tmp_path, body, name="bad.xml"):
    path = tmp_path / name
    path.write_text(f"""<scene version="3.0.0">
    <integrator type="sdf_reparam">{body}</integrator>
    <sensor type="orthographic"><film type="hdrfilm"><integer name="width" value="8"/>
    <integer name="height" value="8"/></film></sensor></scene>""")
    return str(path)


SPHERE = '<string name="sdf_shape" value="sphere"/>'
BAD = {
    "gamma 2": (SPHERE + '<float name="gamma" value="2"/>', "gamma must be > 2"),
    "top_k 1": (SPHERE + '<integer name="top_k" value="1"/>', "top_k must be 0 (all points) or >= 2"),
    "top_k -1": (SPHERE + '<integer name="top_k" value="-1"/>', "top_k must be 0 (all points) or >= 2"),
    "max_steps 0": (SPHERE + '<integer name="max_steps" value="0"/>', "max_steps must be >= 1"),
    "missing sdf": ('<float name="gamma" value="3"/>', "missing SDF"),
    "unknown shape": ('<string name="sdf_shape" value="cone"/>', "unknown sdf_shape 'cone'"),
    "albedo channels": (SPHERE + '<volume name="albedo" type="gridvolume">'
                        '<string name="filename" value="$gray"/></volume>',
                        "albedo volume must have 3 channels (got 1)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_value_error_and_cli_exits_2(case, tmp_path, capsys):
    import mitsuba as mi
    gray = tmp_path / "gray.vol"
    mi.VolumeGrid(np.full((2, 2, 2, 1), 0.5, np.float32)).write(str(gray))
    body, message = BAD[case]
    path = _integrator_xml(tmp_path, body.replace("$gray", str(gray)))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_scene(path)
    capsys.readouterr()
    assert cli.main(["render", path, "-o", str(tmp_path / "x.exr")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and message in err[0], err


def test_cli_subprocess_exit_2_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rvs_mi.cli", "render", scenes.path("sdf_sphere.xml"),
                          "-D", "top_k=1", "-o", str(tmp_path / "x.exr")], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "top_k must be 0 (all points) or >= 2 (got 1)" in lines[0]


def test_sdfgrad_command_writes_naive_ours_fd(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["sdfgrad", "-o", str(out), "--res", str(RES), "--spp", "16", "--fd-spp", "64"]) == 0
    for name in ("naive.exr", "reparam.exr", "fd.exr", "strip.png"):
        assert (out / name).stat().st_size > 0, name
    line = capsys.readouterr().out
    assert "sdf_naive" in line and "sdf_reparam" in line
    import mitsuba as mi
    ours = np.array(mi.Bitmap(str(out / "reparam.exr")))
    naive = np.array(mi.Bitmap(str(out / "naive.exr")))
    fd = np.array(mi.Bitmap(str(out / "fd.exr")))
    assert ours.shape[:2] == (RES, RES) and np.isfinite(ours).all()
    e_ours = compare_gradients(ours, fd)["relative_error"]
    e_naive = compare_gradients(naive, fd)["relative_error"]
    assert e_ours < 0.5 * e_naive, (e_ours, e_naive)       # the boundary term is there
    assert cli.main(["sdfgrad", "-o", str(out), "--spp", "0"]) == 2
    assert "--spp must be >= 1" in capsys.readouterr().err
