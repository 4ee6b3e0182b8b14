"""The rvs-mi command: render, and one clear line + exit 2 for each bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from rvs_mi import cli
from rvs_mi.scene import load_scene, parse_defines


def run_cli(*args):
    """Run ``rvs-mi`` in a subprocess (as a user would) and return (rc, stdout, stderr)."""
    out = subprocess.run([sys.executable, "-m", "rvs_mi.cli", *args], capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


def test_render_png_and_exr(tmp_path, cbox_path):
    exr, png = tmp_path / "c.exr", tmp_path / "c.png"
    assert cli.main([ "render", cbox_path, "-o", str(exr), "--spp", "4", "-D", "res=32"]) == 0
    assert cli.main(["render", cbox_path, "-o", str(png), "--spp", "4", "-D", "res=32"]) == 0
    import mitsuba as mi
    img = np.array(mi.Bitmap(str(exr)))
    assert img.shape == (32, 32, 3) and np.isfinite(img).all() and img.mean() > 0.05
    assert tuple(mi.Bitmap(str(png)).size()) == (32, 32)


def test_render_prints_resolution_spp_and_time(cbox_path, tmp_path):
    import re
    import time
    start = time.perf_counter()
    rc, out, err = run_cli("render", cbox_path, "-o", str(tmp_path / "x.exr"), "--spp", "2",
                           "-D", "res=16")
    wall = time.perf_counter() - start
    assert rc == 0, err
    assert "16x16, 2 spp" in out
    seconds = float(re.search(r"2 spp, (\d+\.\d+) s", out).group(1))
    assert 0 < seconds < wall


def _bad_xml(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("<scene version='3.0.0'><shape type='sphere'></scene>")
    return str(path)


BAD_INPUTS = {
    "missing scene": (lambda t, c: ["render", str(t / "nope.xml")], "scene file not found"),
    "malformed xml": (lambda t, c: ["render", _bad_xml(t)], "cannot load scene"),
    "malformed -D": (lambda t, c: ["render", c, "-D", "res"], "malformed define 'res'"),
    "spp 0": (lambda t, c: ["render", c, "--spp", "0"], "spp must be >= 1"),
    "unwritable output": (lambda t, c: ["render", c, "-o", str(t / "no" / "dir" / "x.exr")],
                          "does not exist"),
    "unknown param": (lambda t, c: ["fdcheck", c, "--param", "red.reflectanse.value", "-o", str(t / "f")],
                      "unknown parameter 'red.reflectanse.value'; closest keys: red.reflectance.value"),
    "non-differentiable param": (lambda t, c: ["fdcheck", c, "--param", "camera.film.size", "-o", str(t / "f")],
                                 "is not differentiable"),
    "fdcheck spp 0": (lambda t, c: ["fdcheck", c, "--param", "red.reflectance.value", "--spp", "0"],
                      "--spp must be >= 1"),
    "unknown subcommand option": (lambda t, c: ["render", c, "--nope"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, cbox_path):
    make_args, fragment = BAD_INPUTS[case]
    rc, out, err = run_cli(*make_args(tmp_path, cbox_path))
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert fragment in lines[0]


def test_python_api_raises_value_error_with_same_text(tmp_path, cbox_path):
    with pytest.raises(ValueError, match="scene file not found"):
        load_scene(str(tmp_path / "nope.xml"))
    with pytest.raises(ValueError, match="malformed define"):
        parse_defines(["=3"])
    with pytest.raises(ValueError, match="cannot load scene"):
        load_scene(_bad_xml(tmp_path))
    from rvs_mi.validate import fd_check
    scene = load_scene(cbox_path, {"res": "16"})
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        fd_check(scene, "nope")
    with pytest.raises(ValueError, match="not differentiable"):
        fd_check(scene, "camera.film.size")
