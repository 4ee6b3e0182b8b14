"""The wheel holds every plugin, scene, volume, texture and config of the source tree."""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# source folder -> package folder inside the wheel
MAPPED = {"integrators": "rvs_mi/integrators", "scenes": "rvs_mi/scenes", "rvs_mi": "rvs_mi"}
SHIPPED = ("*.py", "*.xml", "*.toml", "*.vol", "*.png", "*.exr", "*.ply")


def _expected():
    files = set()
    for src, dst in MAPPED.items():
        for pattern in SHIPPED:
            for path in glob.glob(os.path.join(ROOT, src, "**", pattern), recursive=True):
                if "__pycache__" not in path:
                    files.add(dst + "/" + os.path.relpath(path, os.path.join(ROOT, src)).replace(os.sep, "/"))
    return files


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the source tree: setuptools writes build/ and *.egg-info next to the sources,
    # and a stale build/ of the checkout would leak into the wheel
    src = tmp_path_factory.mktemp("src") / "rvs-mi"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "out", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = glob.glob(str(out / "*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_wheel_holds_every_shipped_file(wheel_files):
    expected = _expected()
    assert len(expected) > 40
    missing = sorted(expected - wheel_files)
    assert not missing, f"missing from the wheel: {missing}"


def test_wheel_has_the_command_and_python_requirement(wheel_files):
    meta = [n for n in wheel_files if n.endswith(".dist-info/METADATA")]
    entry = [n for n in wheel_files if n.endswith(".dist-info/entry_points.txt")]
    assert meta and entry
