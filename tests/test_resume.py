"""Crash-safe runs of ``rvs-mi optimize``: append-only metrics, atomic checkpoints, --resume that
continues exactly or refuses with one line, non-finite values that stop the run, and a run killed
at random moments that ends bit-for-bit where an uninterrupted one does."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from rvs_mi import scenes
from rvs_mi.errors import UserError
from rvs_mi.optimize import checkpoint as ckpt
from rvs_mi.optimize import loop
from rvs_mi.optimize.config import load_config
from rvs_mi.optimize.loop import run_optimization

EXAMPLE = scenes.path("configs/texture_prb.toml")
KEY = "painted.reflectance.data"
#: A 16×16 two-view texture fit with the adaptive sampler (its state is part of the checkpoint).
SMALL = ["optimize.steps=6", "references.res=16", "scene.defines={ res = \"16\" }", "references.views=2",
         "references.test_views=1", "references.spp=16", "output.eval_spp=4", "output.checkpoint_every=2",
         "sampler.name=\"adaptive\"", "sampler.budget=0.5", "sampler.rebuild_every=2", "sampler.tile=4"]


def config(*extra):
    return load_config(EXAMPLE, SMALL + list(extra))


def rows(folder):
    """metrics.csv rows without the wall-clock column."""
    with open(os.path.join(folder, "metrics.csv"), newline="") as f:
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in csv.DictReader(f)]


def params(folder):
    with np.load(os.path.join(folder, "params.npz")) as data:
        return data[KEY.replace("/", "_")]


def cli(*args, timeout=300):
    out = subprocess.run([sys.executable, "-m", "rvs_mi.cli", *args], capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def error_lines(err):
    return [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted deterministic run."""
    out = str(tmp_path_factory.mktemp("full"))
    run_optimization(config(), out, progress=False, deterministic=True)
    return out


@pytest.fixture
def stopped(tmp_path):
    """The same run stopped after step 4 (last checkpoint after step 3), as a kill would leave it."""
    out = str(tmp_path / "run")
    run_optimization(config(), out, progress=False, stop_after=4, deterministic=True)
    return out


def test_metrics_rows_are_appended_and_flushed_each_step(tmp_path, monkeypatch, full):
    """At the start of step i metrics.csv holds the header and rows 0 .. i-1, each a prefix of the
    final file: rows are never held back for a checkpoint or rewritten."""
    seen = []
    original = loop.step

    def watching(cfg, problem, opt, sampler, i, core):
        with open(tmp_path / "run" / "metrics.csv", "rb") as f:
            seen.append((i, f.read()))
        return original(cfg, problem, opt, sampler, i, core)

    monkeypatch.setattr(loop, "step", watching)
    run_optimization(config(), str(tmp_path / "run"), progress=False, deterministic=True)
    final = open(tmp_path / "run" / "metrics.csv", "rb").read()
    for i, text in seen:
        assert final.startswith(text) and text.count(b"\n") == i + 1, (i, text)
    assert rows(str(tmp_path / "run")) == rows(full) and len(rows(full)) == 6


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch, stopped):
    """A checkpoint records the rows it covers; a write that dies midway leaves the previous file
    intact and no temporary file, and the new file is fsynced before the rename."""
    path = os.path.join(stopped, ckpt.CHECKPOINT)
    opt, meta = ckpt.read_checkpoint(path)
    assert meta["step"] == 3 and meta["rows"] == 4
    before = open(path, "rb").read()

    def dying(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", dying)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(path, 9, opt, [KEY])
    assert open(path, "rb").read() == before and os.listdir(stopped).count(ckpt.CHECKPOINT) == 1
    assert not [n for n in os.listdir(stopped) if ".tmp" in n]
    monkeypatch.undo()

    calls = []
    for name in ("fsync", "replace"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _n=name, _r=real: (calls.append(_n), _r(*a))[1])
    ckpt.save_checkpoint(path, 5, opt, [KEY], rows=6)
    assert calls[:2] == ["fsync", "replace"] and calls[-1] == "fsync"     # file, rename, folder
    assert ckpt.read_checkpoint(path)[1]["rows"] == 6


def test_resume_after_a_row_cut_midway_matches_an_uninterrupted_run(stopped, full):
    """Rows after the checkpoint (one of them cut mid-line by a kill) are dropped and recomputed:
    every row and the final parameters are bit-identical to the uninterrupted run's."""
    with open(os.path.join(stopped, "metrics.csv"), "a") as f:
        f.write("5,0.01")
    assert len(rows(stopped)) == 6                          # rows 0-4, then the cut one
    run_optimization(config(), stopped, resume=True, progress=False)
    assert rows(stopped) == rows(full)
    assert np.array_equal(params(stopped), params(full))
    assert open(os.path.join(stopped, "metrics.csv")).read().count("\n") == 7


def test_resume_refuses_a_changed_config_and_keeps_config_json(stopped):
    saved = open(os.path.join(stopped, "config.json")).read()
    with pytest.raises(UserError, match=r"differs from the run's config.json in optimize\.lr, optimize\.seed, "
                                        r"sampler\.budget \(only"):
        run_optimization(config("optimize.lr=0.1", "optimize.seed=3", "sampler.budget=0.25"), stopped,
                         resume=True, progress=False)
    assert open(os.path.join(stopped, "config.json")).read() == saved
    # The length of the run and the output cadence may change.
    summary = run_optimization(config("optimize.steps=7", "output.checkpoint_every=3"), stopped,
                               resume=True, progress=False)
    assert summary["steps"] == 7 and len(rows(stopped)) == 7


def test_resume_refuses_a_checkpoint_of_other_shapes(stopped):
    import drjit as dr
    import mitsuba as mi
    path = os.path.join(stopped, ckpt.CHECKPOINT)
    saved = open(os.path.join(stopped, "config.json")).read()
    other = mi.ad.Adam(lr=0.1, params={KEY: dr.zeros(mi.TensorXf, (8, 8, 3))})
    ckpt.save_checkpoint(path, 3, other, [KEY])
    with pytest.raises(UserError, match=r"holds painted.reflectance.data of shape \(8, 8, 3\), the scene's "
                                        r"after 4 steps is \(16, 16, 3\)"):
        run_optimization(config(), stopped, resume=True, progress=False)
    assert open(os.path.join(stopped, "config.json")).read() == saved


def test_resume_of_a_finished_run_says_so_and_exits_0(full, tmp_path):
    run = shutil.copytree(full, tmp_path / "run")
    before = {n: os.path.getmtime(run / n) for n in os.listdir(run)}
    rc, out, err = cli("optimize", EXAMPLE, "-o", str(run), "--resume", *sum((["--set", s] for s in SMALL), []))
    assert rc == 0 and "is finished (6 steps done, 6 asked)" in out, (out, err)
    assert {n: os.path.getmtime(run / n) for n in os.listdir(run)} == before
    # Killed after the last checkpoint, before summary.json: resume writes the outputs.
    os.remove(run / "summary.json")
    os.remove(run / "params.npz")
    summary = run_optimization(config(), str(run), resume=True, progress=False)
    assert summary["steps"] == 6 and np.array_equal(params(str(run)), params(full))
    assert rows(str(run)) == rows(full)


def _corrupt_truncated(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _corrupt_zip(path, drop=None, replace=None):
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries.pop(drop, None)
    entries.update(replace or {})
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def _npy(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("damage, fragment", [
    (_corrupt_truncated, "BadZipFile"),
    (lambda p: _corrupt_zip(p, drop="meta.npy"), "KeyError"),
    (lambda p: _corrupt_zip(p, replace={"optimizer.npy": _npy(np.frombuffer(b"\x80\x04garbage", np.uint8))}),
     "UnpicklingError"),
    (lambda p: _corrupt_zip(p, replace={"meta.npy": _npy(np.array('{"step": 3, "keys": []}'))}),
     "its meta lacks rows"),
    (lambda p: _corrupt_zip(p, replace={"meta.npy": _npy(np.array('{"step": "3", "keys": [], "rows": 4}'))}),
     "its meta has a wrong step"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(stopped, damage, fragment):
    path = os.path.join(stopped, ckpt.CHECKPOINT)
    damage(path)
    with pytest.raises(UserError) as info:
        run_optimization(config(), stopped, resume=True, progress=False)
    message = str(info.value)
    assert path in message and fragment in message and "\n" not in message, message


def test_a_damaged_checkpoint_is_exit_2_on_the_command_line(stopped):
    _corrupt_truncated(os.path.join(stopped, ckpt.CHECKPOINT))
    rc, out, err = cli("optimize", EXAMPLE, "-o", stopped, "--resume", *sum((["--set", s] for s in SMALL), []))
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and "unreadable checkpoint" in lines[0] and "Traceback" not in err, err


def test_non_finite_values_stop_the_run_and_keep_the_last_checkpoint(tmp_path, monkeypatch):
    """A step that leaves NaN in the parameters stops the run with one line; the checkpoint of the
    step before stays as it was and no row, parameters or summary of the bad step are written.
    A checkpoint holding NaN moments is refused on resume."""
    out = str(tmp_path / "run")
    original = loop.step

    def poisoned(cfg, problem, opt, sampler, i, core):
        result = original(cfg, problem, opt, sampler, i, core)
        if i == 3:
            opt[KEY] = opt[KEY] * float("nan")
        return result

    monkeypatch.setattr(loop, "step", poisoned)
    saved = {}
    real_save = ckpt.save_checkpoint

    def remember(path, step, *a, **k):
        real_save(path, step, *a, **k)
        saved[step] = open(path, "rb").read()

    monkeypatch.setattr(loop, "save_checkpoint", remember)
    with pytest.raises(UserError, match=r"step 3: non-finite values \(NaN/inf\) in parameters or optimizer "
                                        r"moments of painted.reflectance.data .*last good checkpoint is"):
        run_optimization(config(), out, progress=False)
    assert list(saved) == [1] and open(os.path.join(out, ckpt.CHECKPOINT), "rb").read() == saved[1]
    assert [r["step"] for r in rows(out)] == ["0", "1", "2"]
    assert not os.path.exists(os.path.join(out, "params.npz")) and not os.path.exists(os.path.join(out, "summary.json"))

    opt, meta = ckpt.read_checkpoint(os.path.join(out, ckpt.CHECKPOINT))
    value, promoted, lr, (t, m, v, vmax) = opt.state[KEY]
    opt.state[KEY] = (value, promoted, lr, (t, m, v * float("inf"), vmax))
    ckpt.save_checkpoint(os.path.join(out, ckpt.CHECKPOINT), 1, opt, [KEY], rows=2)
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"checkpoint .*checkpoint.npz holds non-finite values \(NaN/inf\) in "
                                        r"painted.reflectance.data"):
        run_optimization(config(), out, resume=True, progress=False)


def _rows_written(run):
    try:
        with open(os.path.join(run, "metrics.csv"), "rb") as f:
            return f.read().count(b"\n") - 1
    except FileNotFoundError:
        return -1


def _kill_after(cmd, run, rows_target, delay):
    """Start ``cmd``, SIGKILL it ``delay`` seconds after metrics.csv reached ``rows_target`` rows;
    True if it was still running then."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and _rows_written(run) < rows_target:
        time.sleep(0.005)
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    return running


def test_runs_killed_at_random_moments_end_bit_for_bit_like_an_uninterrupted_run(tmp_path):
    """`rvs-mi optimize --deterministic` SIGKILLed three times at seeded random moments (a random
    row count, then a random fraction of a step or a checkpoint write) and resumed each time: every
    metrics row (but the wall clock) and the final parameters equal an uninterrupted run's bit for bit."""
    args = [EXAMPLE, "--deterministic", *sum((["--set", s] for s in SMALL + [
        "optimize.steps=30", "output.checkpoint_every=3"]), [])]
    rc, _, err = cli("optimize", *args, "-o", str(tmp_path / "full"))
    assert rc == 0, err
    run, rng, killed = str(tmp_path / "killed"), np.random.default_rng(7), 0
    targets = [int(rng.integers(2, 9)), int(rng.integers(12, 19)), int(rng.integers(22, 28))]
    for target in targets:
        started = os.path.isfile(os.path.join(run, "config.json"))     # else there is nothing to resume
        cmd = [sys.executable, "-m", "rvs_mi.cli", "optimize", *args, "-o", run] + (["--resume"] if started else [])
        killed += _kill_after(cmd, run, target, float(rng.uniform(0.0, 0.15)))
    assert killed == 3
    rc, out, err = cli("optimize", *args, "-o", run, "--resume")
    assert rc == 0, err
    assert rows(run) == rows(str(tmp_path / "full")) and len(rows(run)) == 30
    assert np.array_equal(params(run), params(str(tmp_path / "full")))
