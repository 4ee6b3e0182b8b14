"""Frozen optimization steps (rvs_mi.optimize.frozen): a replayed step gives the parameters a
traced step gives, for the volume integrators, full images and sparse batches; everything else
is traced with one notice line, and a recording that fails falls back without a lost step."""
import drjit as dr
import numpy as np
import pytest

from rvs_mi import scenes
from rvs_mi.optimize.config import load_config

STEPS = 12
#: Adam's ε for the comparisons. With the default 1e-8 an early Adam step is ≈ lr·sign g, so a
#: gradient of 1e-12 in one run and −1e-12 in the other (rounding: kernels split differently)
#: moves a voxel by 2·lr; a larger ε keeps such rounding at rounding size.
EPSILON = 1e-3
XML_PROPERTIES = {"rvs": '<integer name="knots" value="32"/><integer name="samples" value="4"/>',
                  "volquad": '<integer name="knots" value="32"/>',
                  "rvs_hier": '<integer name="coarse_knots" value="16"/><integer name="fine_samples" value="8"/>'}
SAMPLERS = {"full": "", "uniform": "budget = 0.25", "adaptive": "budget = 0.25\nrebuild_every = 2\ntile = 4",
            "all": "budget = 0.25\nrebuild_every = 2\ntile = 4\nview_choice = \"all\""}


def volume_config(tmp_path, integrator: str, sampler: str, freeze: bool = True):
    """The volume example (scenes/volume_fit.xml fitted to blocks.xml) at 16², 8³ → 16³ grids."""
    xml = open(scenes.path("volume_fit.xml")).read()
    xml = xml.replace('<integer name="knots" value="$knots"/>', "")
    xml = xml.replace('<integer name="samples" value="$samples"/>', XML_PROPERTIES[integrator])
    xml = xml.replace('value="volume/', f'value="{scenes.path("volume")}/')
    (tmp_path / "scene.xml").write_text(xml)
    (tmp_path / "run.toml").write_text(f"""
[scene]
file = "scene.xml"
defines = {{ integrator = "{integrator}", activation = "softplus" }}
[references]
scene = "{scenes.path("blocks.xml")}"
views = 2
test_views = 0
res = 16
spp = 4
[optimize]
params = ["volume.density.data", "volume.radiance.data"]
steps = {STEPS}
spp = 1
lr = 0.1
lr_schedule = "cosine"
clamp = {{ "volume.radiance.data" = [0.0, 4.0] }}
freeze = {str(freeze).lower()}
[sampler]
name = "{"adaptive" if sampler == "all" else sampler}"
{SAMPLERS[sampler]}
[upsample]
initial_resolution = 8
at_steps = [4]
""")
    return load_config(str(tmp_path / "run.toml"))


def run_steps(config, frozen: bool):
    """(losses, parameters after STEPS steps, the core, its notices) from the same start."""
    from rvs_mi.optimize import loop
    from rvs_mi.optimize.frozen import FrozenCore, blocker
    from rvs_mi.optimize.step import make_core, step
    problem = loop.setup_problem(config)
    sampler = loop.make_pixel_sampler(config, problem)
    opt = loop._fresh_optimizer(config, problem)
    opt.epsilon = EPSILON
    problem.params.update(opt)
    core = make_core(config, problem)
    notices = []
    if frozen:
        core = FrozenCore(core, blocker(problem.scene, problem.params, problem.keys), notices.append)
    losses, still = [], []
    for i in range(STEPS):
        before = {k: np.array(problem.params[k]) for k in problem.keys}
        losses.append(step(config, problem, opt, sampler, i, core)["loss"])
        still.append({k: np.array(problem.params[k]) == v for k, v in before.items()
                      if v.shape == dr.shape(problem.params[k])})
    return np.array(losses), {k: np.array(problem.params[k]) for k in problem.keys}, core, notices, still


@pytest.mark.parametrize("integrator, sampler", [("rvs", "adaptive"), ("volquad", "uniform"),
                                                 ("rvs_hier", "uniform"), ("rvs", "all")])
def test_frozen_steps_give_the_traced_parameters(tmp_path, integrator, sampler):
    """Replayed steps give the traced run's losses and parameters, up to rounding (kernels split
    differently round differently)."""
    config = volume_config(tmp_path, integrator, sampler)
    traced_loss, traced, _, _, traced_still = run_steps(config, frozen=False)
    loss, replayed, core, notices, still = run_steps(config, frozen=True)
    assert notices == [] and core.failed is None
    # recorded for the first steps, the views and after the upsampling; replayed otherwise
    assert 1 <= core.recordings <= STEPS - 4, core.recordings
    assert np.abs(loss / traced_loss - 1).max() < 3e-3, np.abs(loss / traced_loss - 1).max()
    for key, value in traced.items():
        assert value.shape == replayed[key].shape == (16, 16, 16, value.shape[3])
        assert np.abs(replayed[key] - value).mean() < 1e-3 * np.abs(value).mean(), key
    # entries without a gradient stay as they are in both runs; a replay that left its gradients
    # on the parameters moved them in the next recorded step
    for i, (a, b) in enumerate(zip(traced_still, still)):
        for key in a:
            assert np.mean(a[key] != b[key]) < 2e-3, (i, key, a[key].sum(), b[key].sum())
    assert sum(a[key].sum() for a in traced_still for key in a) > 100     # there were such entries


def test_what_is_not_frozen_is_traced_with_one_notice(tmp_path):
    """Whole images, Mitsuba's integrators and deterministic runs are traced with one notice line; a recording
    that fails, even after the step ran, falls back to tracing from the optimizer state before
    it, and the failing step is run once."""
    import drjit as dr
    from rvs_mi.optimize.frozen import FrozenCore, blocker
    config = volume_config(tmp_path, "rvs", "uniform")
    from rvs_mi.optimize import loop
    problem = loop.setup_problem(config)
    assert "deterministic" in blocker(problem.scene, problem.params, problem.keys, deterministic=True)
    assert "whole-image" in blocker(problem.scene, problem.params, problem.keys, sparse=False)
    assert blocker(problem.scene, problem.params, problem.keys) is None
    from rvs_mi.scene import load_scene
    import mitsuba as mi
    cbox = load_scene(scenes.path("cbox.xml"))
    assert "not an rvs-mi integrator" in blocker(cbox, mi.traverse(cbox), [])
    sdf = load_scene(scenes.path("sdf_sphere.xml"))
    assert blocker(sdf, mi.traverse(sdf), []) is None
    calls = []

    def adam_step(opt, data):
        dr.backward(dr.sum(dr.square(opt["x"] - data["target"])))
        opt.step()

    def core(scene, params, opt, data):              # a step that fails after it ran
        calls.append(bool(dr.flag(dr.JitFlag.FreezingScope)))
        adam_step(opt, data)
        if calls[-1]:
            raise RuntimeError("a read-back while recording")
        return "traced"

    def adam():
        opt = mi.ad.Adam(lr=0.1, params={"x": mi.Float(1.0, 2.0)})
        opt.set_learning_rate({"x": dr.opaque(mi.Float, 0.1)})
        return opt
    notices = []
    frozen = FrozenCore(core, None, notices.append)
    opt, reference = adam(), adam()
    for target in (3.0, 5.0):
        data = {"seed": mi.UInt32(1), "target": mi.Float(target)}
        assert frozen(problem.scene, problem.params, opt, data) == "traced"
        reference.set_learning_rate({"x": dr.opaque(mi.Float, 0.1)})
        opt.set_learning_rate({"x": dr.opaque(mi.Float, 0.1)})
        adam_step(reference, data)
    assert calls == [True, False, False] and frozen.failed == "a read-back while recording"
    assert np.array_equal(np.array(opt["x"]), np.array(reference["x"]))      # each step ran once
    assert notices == ["rvs-mi optimize: steps are traced, not frozen: a read-back while recording"]


def test_deterministic_runs_are_traced_and_resume_bit_for_bit(tmp_path, capfd):
    """A frozen run resumed from a checkpoint records its first step where the uninterrupted run
    replays, and rounds differently; deterministic runs are therefore traced (one notice), and a
    resumed one ends with the uninterrupted run's parameters, bit for bit."""
    from rvs_mi.optimize.loop import run_optimization
    config = volume_config(tmp_path, "rvs", "full")
    config.output.checkpoint_every = 3
    config.output.eval_spp = 1
    run_optimization(config, str(tmp_path / "a"), progress=False, deterministic=True)
    assert "deterministic runs are traced" in capfd.readouterr().err
    run_optimization(config, str(tmp_path / "c"), progress=False, stop_after=7, deterministic=True)
    run_optimization(config, str(tmp_path / "c"), resume=True, progress=False)
    a, c = (np.load(tmp_path / r / "params.npz") for r in "ac")
    for k in a.files:
        assert np.array_equal(a[k], c[k]), (k, np.abs(a[k] - c[k]).max())


@pytest.mark.parametrize("name, extra", [
    ("sdf_sphere", []),
    ("sdf_grid", ["upsample.at_steps=[]", "optimize.multiscale=1"]),
    ("volume_neural", []),
])
def test_frozen_sdf_and_neural_steps_follow_the_traced_run(name, extra):
    """Sparse batches of the analytic SDF (one recording per view) and of the grid SDF
    (Laplacian, redistancing), and of the neural volume fields."""
    config = load_config(scenes.path(f"configs/{name}.toml"),
                         ["optimize.steps=6", "references.views=2", "references.test_views=0", "references.res=16",
                          "references.spp=4", 'sampler.name="uniform"', "sampler.budget=0.25", *extra])
    global STEPS
    saved, STEPS = STEPS, 6
    try:
        traced_loss, traced, _, _, _ = run_steps(config, frozen=False)
        loss, replayed, core, notices, _ = run_steps(config, frozen=True)
    finally:
        STEPS = saved
    assert notices == [] and 1 <= core.recordings <= 5, (notices, core.recordings)
    assert np.abs(loss / traced_loss - 1).max() < 3e-3
    for key, value in traced.items():
        assert np.abs(replayed[key] - value).mean() < 1e-3 * np.abs(value).mean(), key
