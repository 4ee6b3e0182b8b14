"""Grid children honour any affine ``to_world`` and every ``filter_type``/``wrap_mode``.

Reference: Mitsuba's own ``gridvolume.eval`` of the same child.
"""
import zlib

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

from rvs_mi.errors import UserError
from rvs_mi.sdf.grid import GridSDF
from rvs_mi.volume.fields import make_field
from rvs_mi.volume.scene import load_volume_scene

FILTERS = ("trilinear", "nearest")
WRAPS = ("clamp", "repeat", "mirror")


def _unit(v):
    return (np.asarray(v, float) / np.linalg.norm(v)).tolist()


def _affine(rng, kind):
    """Rotation (general or 180°), a mirror and a non-uniform scale, then a translation."""
    t = mi.ScalarTransform4f().translate(rng.normal(size=3).tolist())
    if kind == "general":
        t = t.rotate(_unit(rng.normal(size=3)), float(rng.uniform(10, 350)))
    else:
        t = t.rotate([0, 0, 1], 180.0)
    scale = rng.uniform(0.4, 2.5, 3) * np.array([-1.0, 1.0, 1.0])
    return t.scale(scale.tolist()).rotate(_unit(rng.normal(size=3)), float(rng.uniform(0, 360)))


def _gridvolume(data, to_world, filter_type="trilinear", wrap_mode="clamp"):
    return mi.load_dict({"type": "gridvolume", "grid": mi.VolumeGrid(data), "to_world": to_world,
                         "filter_type": filter_type, "wrap_mode": wrap_mode})


def _world_points(to_world, rng, n=1500, lo=-0.3, hi=1.3):
    u = rng.uniform(lo, hi, (n, 3))
    w = (np.array(to_world.matrix, dtype=np.float64) @ np.c_[u, np.ones(n)].T).T[:, :3]
    return mi.Point3f(*[mi.Float(w[:, k].astype(np.float32)) for k in range(3)])


def _mitsuba_values(volume, p):
    it = dr.zeros(mi.Interaction3f, dr.width(p))
    it.p = p
    return np.array([np.array(c) for c in volume.eval_n(it)])


@pytest.mark.parametrize("kind", ["general", "half_turn"])
@pytest.mark.parametrize("filter_type", FILTERS)
@pytest.mark.parametrize("wrap_mode", WRAPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_grid_field_matches_gridvolume_eval(kind, filter_type, wrap_mode, channels):
    # (a seed from the case's name: Python's hash() of strings changes from process to process)
    rng = np.random.default_rng(zlib.crc32(repr((kind, filter_type, wrap_mode, channels)).encode()))
    to_world = _affine(rng, kind)
    data = rng.uniform(0.0, 2.0, (5, 6, 7, channels)).astype(np.float32)
    volume = _gridvolume(data, to_world, filter_type, wrap_mode)
    field = make_field("density", volume, (channels,))
    assert (field.placement.filter_type, field.placement.wrap_mode) == (filter_type, wrap_mode)
    p = _world_points(to_world, rng)
    ours = np.array([np.array(c) for c in field.eval(p)])
    assert np.abs(ours - _mitsuba_values(volume, p)).max() < 2e-5
    # the probe leaves the volume's own data as it was
    assert np.array_equal(np.array(mi.traverse(volume)["data"]), data)


def test_many_channel_grid_honours_axis_permutations_and_refuses_other_rotations():
    rng = np.random.default_rng(3)
    data = rng.uniform(-1.0, 1.0, (4, 5, 6, 12)).astype(np.float32)
    turn = mi.ScalarTransform4f().translate([0.3, -0.2, 1.0]).rotate([0, 1, 0], 90.0).scale([1.5, -0.5, 2.0])
    volume = _gridvolume(data, turn, "nearest", "repeat")
    field = make_field("radiance", volume, (12,))
    assert (field.placement.filter_type, field.placement.wrap_mode) == ("nearest", "repeat")
    p = _world_points(turn, rng, lo=0.0, hi=1.0)
    ours = np.array([np.array(c) for c in field.eval(p)])
    assert np.abs(ours - _mitsuba_values(volume, p)).max() < 2e-5
    tilted = mi.ScalarTransform4f().rotate([0, 1, 0], 30.0)
    with pytest.raises(UserError, match="radiance gridvolume has 12 channels"):
        make_field("radiance", _gridvolume(data, tilted), (12,))


def test_mirrored_volume_renders_like_flipped_data():
    """A mirror in ``to_world`` equals the same grid flipped along that axis."""
    rng = np.random.default_rng(4)
    dens = rng.uniform(0.0, 3.0, (4, 4, 4)).astype(np.float32)
    box = mi.ScalarTransform4f().translate([-1.0, -1.0, -1.0]).scale(2.0)
    mirror = mi.ScalarTransform4f().translate([1.0, -1.0, -1.0]).scale([-2.0, 2.0, 2.0])
    opts = {"knots": 64, "samples": 4, "jitter": False}

    def render(density_child):
        scene = load_volume_scene(density_child, (0.5, 0.7, 0.9), "rvs", opts, resolution=(6, 6))
        return np.array(mi.render(scene, spp=1, seed=0))

    mirrored = render({"type": "gridvolume", "grid": mi.VolumeGrid(dens[..., None]), "to_world": mirror})
    flipped = render({"type": "gridvolume", "grid": mi.VolumeGrid(dens[:, :, ::-1, None].copy()),
                      "to_world": box})
    plain = render({"type": "gridvolume", "grid": mi.VolumeGrid(dens[..., None]), "to_world": box})
    assert np.abs(mirrored - flipped).max() < 1e-5
    assert np.abs(mirrored - plain).max() > 1e-2          # the mirror changes the image


def test_nearest_two_slab_volume_matches_closed_form():
    """Two slabs of density 0.5 and 2 along the view, nearest filtering: L = c(1 − e^{−(0.5+2)·1})."""
    dens = np.zeros((2, 2, 2), np.float32)
    dens[0], dens[1] = 0.5, 2.0                          # z halves of the box [−1, 1]³
    child = {"type": "gridvolume", "grid": mi.VolumeGrid(dens[..., None]), "filter_type": "nearest",
             "to_world": mi.ScalarTransform4f().translate([-1.0, -1.0, -1.0]).scale(2.0)}
    c = np.array([0.2, 0.5, 0.9])
    scene = load_volume_scene(child, c, "volquad", {"knots": 1024}, resolution=(4, 4))
    img = np.array(mi.render(scene, spp=1))
    assert np.allclose(img, c * (1 - np.exp(-(0.5 + 2.0))), atol=2e-3, rtol=0)


def _plane_sdf_grid(to_world, n, offset, res=8):
    """Grid of f(x) = n·x + offset at the voxel centres of the placed grid (world units)."""
    i = (np.arange(res) + 0.5) / res
    z, y, x = np.meshgrid(i, i, i, indexing="ij")
    u = np.stack([x, y, z, np.ones_like(x)], axis=-1)
    w = u @ np.array(to_world.matrix, dtype=np.float64).T
    return (w[..., :3] @ n + offset)[..., None].astype(np.float32)


@pytest.mark.parametrize("wrap_mode, spline", [("clamp", "interpolating")]
                         + [(w, "smoothing") for w in WRAPS])
def test_grid_sdf_reproduces_a_plane_under_an_affine_placement(wrap_mode, spline):
    """A cubic B-spline reproduces linear data: f, ∇f = n and H = 0 away from the faces. (The
    interpolating spline with repeat or mirror wrapping interpolates a periodic or mirrored
    extension of the data, which a plane is not.)"""
    rng = np.random.default_rng(7)
    to_world = _affine(rng, "general")
    n = np.array(_unit([0.3, -0.8, 0.5]))
    sdf = GridSDF(_gridvolume(_plane_sdf_grid(to_world, n, 0.25), to_world, wrap_mode=wrap_mode), spline)
    p = _world_points(to_world, rng, n=400, lo=0.3, hi=0.7)
    f, g, H = sdf.eval(p, order=2)
    want = np.array([np.array(p.x), np.array(p.y), np.array(p.z)]).T @ n + 0.25
    assert np.abs(np.array(f) - want).max() < 2e-5
    assert np.abs(np.array([np.array(g.x), np.array(g.y), np.array(g.z)]).T - n).max() < 2e-4
    assert max(np.abs(np.array(H[i][j])).max() for i in range(3) for j in range(3)) < 2e-3


@pytest.mark.parametrize("wrap_mode", WRAPS)
def test_interpolating_grid_sdf_passes_through_the_voxel_values(wrap_mode):
    """The interpolating spline takes the voxel values at the voxel centres (random data, 6 × 7 × 5
    voxels, points at the centres in world space); the smoothing one does not."""
    rng = np.random.default_rng(3)
    to_world = _affine(rng, "general")
    values = rng.normal(size=(5, 7, 6, 1)).astype(np.float32)
    z, y, x = np.meshgrid(*[(np.arange(k) + 0.5) / k for k in (5, 7, 6)], indexing="ij")
    u = np.stack([x, y, z, np.ones_like(x)], axis=-1).reshape(-1, 4)
    w = u @ np.array(to_world.matrix, dtype=np.float64).T
    p = mi.Point3f(*[mi.Float(w[:, k].astype(np.float32)) for k in range(3)])
    errors = {}
    for spline in ("interpolating", "smoothing"):
        sdf = GridSDF(_gridvolume(values, to_world, wrap_mode=wrap_mode), spline)
        errors[spline] = np.abs(np.array(sdf.eval(p)[0]) - values.ravel()).max()
    assert errors["interpolating"] < 1e-4 < 0.1 < errors["smoothing"], errors


def test_grid_sdf_interval_follows_the_placement():
    """The ray segment is the one inside the placed (rotated) box."""
    to_world = mi.ScalarTransform4f().rotate([0, 0, 1], 45.0).scale([2.0, 1.0, 1.0]).translate([-0.5, -0.5, -0.5])
    sdf = GridSDF(_gridvolume(np.ones((4, 4, 4, 1), np.float32), to_world))
    o, d = mi.Point3f(-5.0, 0.0, 0.0), mi.Vector3f(1.0, 0.0, 0.0)
    zero = mi.Vector3f(0.0)
    t0, t1, _, _, valid = sdf.interval(o, d, [zero, zero], [zero, zero])
    # before the 45° turn the x axis runs along (1, −1)/√2 through [−1, 1]×[−½, ½]: |x|/√2 ≤ ½
    half = 0.5 * np.sqrt(2.0)
    assert bool(valid[0])
    assert abs(t0[0] - (5.0 - half)) < 1e-5 and abs(t1[0] - (5.0 + half)) < 1e-5


def test_grid_sdf_refusals():
    box = mi.ScalarTransform4f()
    with pytest.raises(UserError, match='filter_type="nearest"'):
        GridSDF(_gridvolume(np.ones((4, 4, 4, 1), np.float32), box, "nearest"))
    volume = _gridvolume(np.ones((4, 4, 4, 1), np.float32), box)
    with pytest.raises(UserError, match="sdf_spline must be interpolating or smoothing"):
        GridSDF(volume, "cubic")
    sdf = GridSDF(volume)
    params = mi.traverse(volume)
    bad = np.ones((4, 4, 4, 1), np.float32)
    bad[1, 2, 3] = np.nan
    params["data"] = mi.TensorXf(bad)
    params.update()
    with pytest.raises(UserError, match="non-finite"):
        sdf.parameters_changed()


def test_grid_values_must_be_finite_and_bounded():
    data = np.ones((2, 2, 2, 3), np.float32)
    data[0, 0, 0, 0] = 3e38
    with pytest.raises(UserError, match="magnitude"):
        make_field("radiance", _gridvolume(data, mi.ScalarTransform4f()), (3,))


@pytest.mark.parametrize("wrap_mode", ["clamp", "repeat"])
def test_direct_trilinear_matches_texture_values_and_gradients(wrap_mode):
    """The gather-based interpolation of trilinear grid fields equals mi.Texture3f, with
    reverse-mode gradients with respect to the grid and the points, for 27 SH channels."""
    from rvs_mi.volume.trilinear import trilinear
    rng = np.random.default_rng(11)
    data = rng.normal(size=(3, 4, 5, 27)).astype(np.float32)
    u = rng.uniform(-0.3, 1.3, (400, 3)).astype(np.float32)
    weights = [mi.Float(rng.normal(size=400).astype(np.float32)) for _ in range(27)]
    results = []
    for direct in (True, False):
        grid = mi.TensorXf(data)
        p = mi.Point3f(*[mi.Float(u[:, k]) for k in range(3)])
        dr.enable_grad(grid, p)
        if direct:
            values = trilinear(grid, p, wrap_mode)
        else:
            tex = mi.Texture3f(grid, use_accel=False, wrap_mode=getattr(dr.WrapMode, wrap_mode.capitalize()))
            values = tex.eval(p)
        dr.backward(sum(dr.sum(v * w) for v, w in zip(values, weights)))
        results.append((np.array([np.array(v) for v in values]), np.array(dr.grad(grid)),
                        np.array([np.array(c) for c in dr.grad(p)])))
    for ours, theirs in zip(*results):
        assert np.abs(ours - theirs).max() < 1e-4 * max(1.0, np.abs(theirs).max())
