"""Package, variant selection, plugin registration, libLLVM check."""
import subprocess
import sys

import mitsuba as mi
import pytest

import rvs_mi


def test_import_sets_no_variant():
    code = "import rvs_mi, mitsuba as mi; print(mi.variant())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


DOCUMENTED = ("rvs", "rvs_hier", "volquad", "sdf_reparam", "sdf_naive")


def _load_each(names):
    import numpy as np
    grid = lambda c: {"type": "gridvolume", "grid": mi.VolumeGrid(np.ones((2, 2, 2, c), np.float32))}
    for name in names:
        props = {"sdf_shape": "sphere"} if name.startswith("sdf") else {"density": grid(1), "radiance": grid(3)}
        integrator = mi.load_dict({"type": name, **props})
        assert isinstance(integrator, mi.Integrator) and type(integrator).__name__ != "Integrator", name


def test_init_is_idempotent_and_the_documented_plugins_load_from_dicts(variant):
    assert rvs_mi.init(variant) == variant == mi.variant()
    assert rvs_mi.init(variant) == variant
    assert set(DOCUMENTED) <= set(rvs_mi.registered_plugins())
    _load_each(DOCUMENTED)
    # After a variant change every plugin is registered again for the new variant.
    try:
        assert rvs_mi.init("llvm_ad_mono") == "llvm_ad_mono"
        _load_each(["sdf_reparam", "sdf_naive"])
    finally:
        rvs_mi.init(variant)
    _load_each(DOCUMENTED)


def test_env_variable_overrides_choice(monkeypatch, variant):
    monkeypatch.setenv("RVS_MI_VARIANT", variant)
    assert rvs_mi.init() == variant
    monkeypatch.setenv("RVS_MI_VARIANT", "no_such_variant")
    with pytest.raises(ValueError, match="unknown Mitsuba variant 'no_such_variant'"):
        rvs_mi.init()


def test_non_ad_variant_is_rejected():
    with pytest.raises(ValueError, match="no automatic differentiation"):
        rvs_mi.init("scalar_rgb")


@pytest.mark.parametrize("version, fragment", [((-1, -1, -1), "could not load libLLVM"),
                                               ((15, 0, 6), "libLLVM 15.0.6 is too old"),
                                               ((16, 0, 0), "libLLVM 16.0.0 is too old")])
def test_unusable_llvm_is_one_clear_error(version, fragment):
    with pytest.raises(RuntimeError, match=fragment) as info:
        rvs_mi.check_llvm(version)
    assert "apt-get install libllvm19" in str(info.value)
    assert "\n" not in str(info.value)
    rvs_mi.check_llvm((19, 1, 7))  # usable: no error


def test_old_libllvm_in_a_real_process_gives_the_message(tmp_path):
    # A path that cannot be loaded makes Dr.Jit report no LLVM backend.
    code = "import rvs_mi; rvs_mi.init('llvm_ad_rgb')"
    env = {"DRJIT_LIBLLVM_PATH": str(tmp_path / "libLLVM-missing.so"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "could not load libLLVM" in out.stderr
