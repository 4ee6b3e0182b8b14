"""Neural density/radiance fields (rvs_mi.volume.neural) in the volume integrators."""
import numpy as np
import pytest

import rvs_mi
from rvs_mi.errors import UserError
from rvs_mi.validate import fd_check

KEYS = ("volume.density.encoding", "volume.density.weights", "volume.radiance.weights")


def _scene(integrator="rvs", **options):
    from rvs_mi.scene import load_scene
    from rvs_mi.volume.neural import attach_neural_fields
    scene = load_scene(rvs_mi.scenes.path("volume_blob.xml"),
                       {"integrator": integrator, "res": "16", "spp": "4"})
    # A thicker start than the default, so density gradients are not tiny.
    attach_neural_fields(scene.integrator(), **({"density_bias": 0.5, "levels": 4, "hidden": 16} | options))
    return scene


def test_parameters_appear_in_traverse_and_update(variant):
    import drjit as dr
    import mitsuba as mi
    scene = _scene()
    params = mi.traverse(scene)
    for key in KEYS:
        assert key in params.keys()
        assert dr.width(params[key]) > 10
    before = np.array(mi.render(scene, spp=4, seed=0))
    params["volume.radiance.weights"] = params["volume.radiance.weights"] + 0.05
    params.update()
    after = np.array(mi.render(scene, spp=4, seed=0))
    assert np.all(np.isfinite(after))
    assert np.abs(after - before).max() > 1e-3          # the update took effect


@pytest.mark.parametrize("integrator,key", [("rvs", "volume.radiance.weights"),
                                            ("rvs", "volume.density.weights"),
                                            ("volquad", "volume.density.encoding")])
def test_gradients_match_finite_differences(variant, integrator, key):
    scene = _scene(integrator)
    result = fd_check(scene, key, eps=1e-3, spp=16, mode="both", seed=3)
    forward = result.report["forward"]
    reverse = result.report["backward"]
    assert forward["relative_error"] < 0.03, forward
    assert reverse["relative_error"] < 0.03, reverse


def test_bad_options(variant):
    with pytest.raises(UserError, match="unknown neural field option"):
        _scene(layers=3)
    with pytest.raises(UserError, match="hidden must be >= 1"):
        _scene(hidden=0)


def test_config_fits_neural_fields(variant, tmp_path):
    from rvs_mi.optimize.config import load_config
    from rvs_mi.optimize.loop import run_optimization
    config = load_config(rvs_mi.scenes.path("configs/volume_neural.toml"),
                         ["optimize.steps=60", "optimize.lr=0.03", "references.views=4", "references.test_views=1",
                          "references.res=16", "references.spp=16", "output.checkpoint_every=0",
                          "output.eval_spp=2"])
    summary = run_optimization(config, str(tmp_path), progress=False)
    assert summary["psnr_final"] > summary["psnr_initial"] + 2.0, summary
