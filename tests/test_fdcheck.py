"""Finite-difference validation on Mitsuba's own prb integrator (a known-good gradient)."""
import json

import numpy as np
import pytest

from rvs_mi import cli
from rvs_mi.scene import load_scene
from rvs_mi.validate import compare_gradients, fd_check


@pytest.fixture(scope="module")
def prb_check(cbox_path):
    scene = load_scene(cbox_path, {"max_depth": "3"})
    return fd_check(scene, "red.reflectance.value", spp=1024, mode="both", seed=3)


def test_prb_reflectance_gradient_matches_fd(prb_check):
    rep = prb_check.report
    assert rep["forward"]["relative_error"] < 0.05
    assert rep["forward"]["correlation"] > 0.99
    assert rep["forward"]["sign_agreement"] > 0.98
    assert rep["backward"]["relative_error"] < 0.02
    assert rep["forward"]["norm_fd"] > 1.0  # the red wall really moves the image


def test_check_catches_a_wrong_gradient(prb_check):
    # A gradient 15% too large, or one that misses a region, must fail the 0.05 bar.
    assert compare_gradients(prb_check.ad * 1.15, prb_check.fd)["relative_error"] > 0.1
    wrong = prb_check.ad.copy()
    wrong[:, : wrong.shape[1] // 3] = 0.0   # drop the red wall's own pixels
    assert compare_gradients(wrong, prb_check.fd)["relative_error"] > 0.5
    flipped = compare_gradients(-prb_check.ad, prb_check.fd)
    assert flipped["sign_agreement"] < 0.05 and flipped["correlation"] < -0.99


def test_compare_gradients_exact_cases():
    fd = np.array([1.0, -2.0, 0.0, 4.0])
    assert compare_gradients(fd, fd)["relative_error"] == 0.0
    m = compare_gradients(fd + np.array([0.0, 0.0, 0.0, 1.0]), fd)
    assert m["relative_error"] == pytest.approx(1.0 / np.linalg.norm(fd))
    assert m["sign_agreement"] == 1.0 and m["significant_pixels"] == 3


def test_tensor_parameter_direction_follows_the_seed_and_is_reported():
    import mitsuba as mi
    from rvs_mi.validate.fd import _direction
    ones = mi.TensorXf(np.ones((4, 4, 1), np.float32))
    a, head_a = _direction(ones, 7)
    b, _ = _direction(ones, 7)
    c, head_c = _direction(ones, 8)
    assert np.array_equal(np.array(a), np.array(b))             # reproducible from the seed
    assert not np.allclose(np.array(a), np.array(c))            # and another seed, another direction
    assert np.allclose(np.array(a).ravel()[:8], head_a, atol=1e-6)   # the report names the direction used
    assert np.allclose(np.array(c).ravel()[:8], head_c, atol=1e-6)
    assert len(set(np.round(np.array(a).ravel(), 6))) == 16     # not a constant or a repeated pattern


def test_cli_writes_outputs_and_honours_tol(tmp_path, cbox_path):
    out = tmp_path / "fd"
    args = ["fdcheck", cbox_path, "--param", "green.reflectance.value", "--spp", "16",
            "-D", "res=16", "-D", "max_depth=2", "-o", str(out)]
    assert cli.main(args) == 0
    for name in ("ad.exr", "fd.exr", "strip.png", "report.json"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    for field in ("relative_error", "eps", "spp", "fd_spp", "seed", "direction_seed", "versions",
                  "timings"):
        assert field in report
    assert report["forward"]["correlation"] > 0.5
    # An impossible tolerance makes the check fail with exit status 1.
    assert cli.main(args + ["--tol", "1e-9"]) == 1
