"""Deterministic runs: ``one_thread`` makes Dr.Jit's scatter-adds sum in a fixed order, so runs of
the same config and seed (and resumed runs) are bit-identical; without it they differ only by the
documented bound."""
import os

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

from rvs_mi import scenes
from rvs_mi.optimize.config import load_config
from rvs_mi.optimize.loop import run_optimization
from rvs_mi.optimize.step import one_thread

SMALL = ["optimize.steps=6", "references.views=2", "references.test_views=1", "references.spp=8",
         "output.eval_spp=2", "output.checkpoint_every=2"]
#: The volume example with the adaptive sampler and the grid-SDF example with redistancing, shrunk.
CASES = {
    "volume_rvs": SMALL + ["references.res=12", "upsample.initial_resolution=8", "upsample.at_steps=[3]"],
    "sdf_grid": SMALL + ["references.res=12", "upsample.at_steps=[]", "regularizers.redistance_every=3"],
}


def scatter_and_gather_adjoint():
    """A scatter-add of 1M values into 64 slots and the adjoint of a gather of them."""
    rng = np.random.default_rng(0)
    values = mi.Float(rng.standard_normal(1 << 20).astype(np.float32))
    index = mi.UInt32(rng.integers(0, 64, 1 << 20).astype(np.uint32))
    total = dr.zeros(mi.Float, 64)
    dr.scatter_add(total, values, index)
    x = dr.zeros(mi.Float, 64)
    dr.enable_grad(x)
    dr.backward(dr.sum(dr.gather(mi.Float, x, index) * values))
    return np.array(total), np.array(dr.grad(x))


def test_one_thread_makes_scatter_adds_bit_identical_and_restores_the_thread_count():
    threads = dr.thread_count()
    with one_thread():
        assert dr.thread_count() == 1
        first = scatter_and_gather_adjoint()
        again = [scatter_and_gather_adjoint() for _ in range(3)]
    assert dr.thread_count() == threads
    for a, b in again:
        assert np.array_equal(a, first[0]) and np.array_equal(b, first[1])
    with pytest.raises(KeyError), one_thread():
        raise KeyError("x")
    assert dr.thread_count() == threads


def _params(folder):
    with np.load(os.path.join(folder, "params.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_deterministic_runs_and_resumed_runs_are_bit_identical(tmp_path, name):
    """A run and a run stopped after step 3 and resumed end with the same parameters and metrics,
    bit for bit; a threaded run ends within the documented bound of them."""
    config = load_config(scenes.path(f"configs/{name}.toml"), CASES[name])
    run_optimization(config, str(tmp_path / "a"), progress=False, deterministic=True)
    run_optimization(config, str(tmp_path / "c"), progress=False, stop_after=3, deterministic=True)
    run_optimization(config, str(tmp_path / "c"), resume=True, progress=False)   # keeps the mode
    run_optimization(config, str(tmp_path / "t"), progress=False)
    a, c, t = (_params(str(tmp_path / r)) for r in "act")
    assert a.keys() == c.keys() and a
    for k in a:
        assert np.array_equal(a[k], c[k]), (k, np.abs(a[k] - c[k]).max())
        assert np.all(np.isfinite(a[k])) and np.abs(a[k] - t[k]).max() <= 1e-5, (k, np.abs(a[k] - t[k]).max())
    with open(tmp_path / "a" / "metrics.csv") as fa, open(tmp_path / "c" / "metrics.csv") as fc:
        strip = lambda f: [line.split(",")[:4] + line.split(",")[5:] for line in f]   # noqa: E731
        assert strip(fa) == strip(fc)
