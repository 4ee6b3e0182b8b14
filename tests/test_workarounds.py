"""Canaries for rvs_mi.workarounds: each reproduces a behaviour of the pinned libraries that a
workaround exists for, and fails once a release changes it (then drop the workaround)."""
import subprocess
import sys


def test_set_variant_keeps_the_ad_integrator_base_of_the_previous_variant():
    """Mitsuba 3.9.1: refresh_ad_integrator_base is needed after a variant change."""
    code = ("import mitsuba as mi; mi.set_variant('llvm_ad_rgb'); "
            "import mitsuba.ad.integrators.common as c; mi.set_variant('llvm_ad_mono'); "
            "stale = not issubclass(c.ADIntegrator, mi.Integrator); "
            "from rvs_mi.workarounds import refresh_ad_integrator_base; refresh_ad_integrator_base(); "
            "import mitsuba.ad.integrators.common as c; "
            "print(stale, issubclass(c.ADIntegrator, mi.Integrator))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"], out.stdout
