"""Python API arguments: each bad value is one ``ValueError`` line naming it, before any rendering."""
import math

import numpy as np
import pytest

from rvs_mi.sdf.neural import NeuralSDF
from rvs_mi.validate.fd import fd_check
from rvs_mi.volume.neural import attach_neural_fields
from rvs_mi.volume.scene import load_volume_scene

D, C = np.ones((2, 2, 2)), (0.5, 0.5, 0.5)

SCENE_CASES = [
    (dict(resolution=(0, 4)), "resolution width must be >= 1"),
    (dict(resolution=(4, -2)), "resolution height must be >= 1"),
    (dict(resolution=(4.5, 4)), "resolution width must be an integer"),
    (dict(resolution=(4,)), "resolution must be"),
    (dict(spp=0), "spp must be >= 1"),
    (dict(spp=1.5), "spp must be an integer"),
    (dict(origin=(math.nan, 0, 4)), "origin must be 3 finite numbers"),
    (dict(origin=(0, 0, 0)), "origin and target must differ"),
    (dict(origin=(0, 4, 0)), "must not be parallel"),
    (dict(up=(0, 0, 0)), "must not be parallel"),
    (dict(target=(0, 0)), "target must be 3"),
    (dict(ortho_scale=0), "ortho_scale must be > 0"),
    (dict(ortho_scale=-1.0), "ortho_scale must be > 0"),
    (dict(camera="perspective", fov=0), "fov must be > 0"),
    (dict(camera="perspective", fov=180), "fov must be < 180"),
    (dict(camera="perspective", fov=math.inf), "fov must be a finite number"),
    (dict(camera="fisheye"), "camera must be"),
    (dict(background=(1, 1)), "background must be 3"),
    (dict(background=(math.nan, 0, 0)), "background must be 3 finite"),
    (dict(box_min=(math.nan, 0, 0)), "box_min must be 3 finite"),
    (dict(box_max=(math.inf, 1, 1)), "box_max must be 3 finite"),
    (dict(box_min=(0, 0, 0), box_max=(1, 0, 1)), "box_max must exceed box_min"),
    (dict(integrator="prb"), "unknown volume integrator"),
]


@pytest.mark.parametrize("kwargs, message", SCENE_CASES)
def test_volume_scene_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        load_volume_scene(D, C, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("radiance, message", [((math.nan, 1, 1), "non-finite"),
                                               (np.ones((2, 2, 2, 5)), "5 channels")])
def test_volume_scene_grids(radiance, message):
    with pytest.raises(ValueError, match=message):
        load_volume_scene(D, radiance)


@pytest.fixture(scope="module")
def scene():
    return load_volume_scene(D, C, resolution=(2, 2))


FD_CASES = [
    (dict(spp=0), "spp must be >= 1"),
    (dict(spp=1.5), "spp must be an integer"),
    (dict(fd_spp=0), "fd-spp must be >= 1"),
    (dict(eps=0.0), "eps must be > 0"),
    (dict(eps=math.nan), "eps must be a finite number"),
    (dict(eps=math.inf), "eps must be a finite number"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(direction_seed=-3), "direction seed must be >= 0"),
    (dict(sensor=1), "sensor must be <= 0"),
    (dict(sensor=-1), "sensor must be >= 0"),
    (dict(mode="sideways"), "mode must be"),
]


@pytest.mark.parametrize("kwargs, message", FD_CASES)
def test_fd_check_arguments(scene, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fd_check(scene, "volume.density.data", **{"spp": 1, **kwargs})


NEURAL_CASES = [
    (dict(levels=0), "levels must be >= 1"),
    (dict(levels=2.5), "levels must be an integer"),
    (dict(levels="8"), "levels must be an integer"),
    (dict(hashmap_log2=40), "hashmap_log2 must be <= 26"),
    (dict(per_level_scale=math.nan), "per_level_scale must be a finite number"),
    (dict(per_level_scale=0.5), "per_level_scale must be >= 1"),
    (dict(density_bias=math.inf), "density_bias must be a finite number"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(widht=3), "unknown neural field option"),
]


@pytest.mark.parametrize("kwargs, message", NEURAL_CASES)
def test_neural_field_options(kwargs, message):
    integrator = load_volume_scene(D, C, resolution=(2, 2)).integrator()
    with pytest.raises(ValueError, match=message):
        attach_neural_fields(integrator, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(radius=-1.0), "radius must be > 0"),
    (dict(radius=math.nan), "radius must be > 0"),
    (dict(radius=2.0, bound_radius=1.0), "bound_radius"),
    (dict(hidden=0), "hidden must be an integer >= 1"),
    (dict(layers=1.5), "layers must be an integer"),
    (dict(center=(0, 0)), "center must be 3"),
    (dict(beta=0.0), "beta must be > 0"),
])
def test_neural_sdf_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NeuralSDF(**kwargs)
