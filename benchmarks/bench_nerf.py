"""Radiance-field fits of a dataset we render: Mitsuba's tutorial recipe vs rvs-mi's estimators.

Scene: ``scenes/nerf_object.xml`` (a textured toy robot in [-1, 1]³), rendered by Mitsuba's
path tracer as a NeRF-synthetic RGBA dataset (default 40 training + 8 test views at 64², 64 spp,
cameras on a sphere at distance 3.3, transparent background) or reused with ``--data``.
Every method fits density + degree-2 SH radiance grids in the same world-space box (``--box``)
with the same coarse-to-fine schedule (16³ → 32³ → 64³ at equal thirds of its steps), one
training view per step at 1 spp, images composited over white; one process, run one after
another:

- ``tutorial``: ``benchmarks/anchors/tutorial_rf.py``, the recipe of Mitsuba's tutorial
  "Radiance Field Reconstruction (NeRF-like)" (ReLU density, SH clipped to [0, 1], one march
  step per voxel, PRB-style adjoint, Adam lr 0.2, L1 loss);
- ``rvs``, ``volquad`` (and ``rvs_hier`` on request): ``benchmarks/configs/nerf_<method>.toml``
  through ``rvs_mi.optimize.run_optimization`` with the recipe of those configs.

Columns: held-out PSNR and SSIM of 8-bit sRGB images and PSNR of linear values in [0, 1]
(``rvs_mi.optimize.metrics``, mean over the test views, rendered at ``--eval-spp``); s/step:
mean wall seconds of a training step (kernel compilation included); s/step @64³: mean wall
seconds of the steps at the final grid resolution, after its first step; CPU s: CPU seconds of
the process (all threads, ``time.process_time``) over the training steps; peak RSS: the
process's resident-memory high-water mark over the method's run (reset before each method,
after freeing Dr.Jit's cached blocks); RSS at start: what the process held then (earlier methods'
leftovers and the libraries), included in the peak.

    .venv/bin/python benchmarks/bench_nerf.py --data /tmp/nerf_obj64             # ≈ 3 min on 2 cores
    .venv/bin/python benchmarks/bench_nerf.py --data /tmp/nerf_obj64 --steps 900 # ≈ 8 min
    .venv/bin/python benchmarks/bench_nerf.py --data /tmp/nerf_obj64 --steps 900 --steps-of rvs=600

The first call renders the dataset into ``--data`` (a few seconds); later calls reuse it.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time

from common import variant, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SCENE = os.path.join(ROOT, "scenes", "nerf_object.xml")
METHODS = ("tutorial", "rvs", "volquad", "rvs_hier")


def rss_mb(field: str = "VmHWM") -> float:
    """The process's resident memory (``VmRSS``) or its high-water mark (``VmHWM``), in MB."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith(field)) / 1024
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_reset() -> float:
    """Free cached memory and reset the resident-memory high-water mark (Linux); the RSS after."""
    import gc

    import drjit as dr
    gc.collect()
    dr.flush_malloc_cache()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return rss_mb("VmRSS")


def make_dataset(args) -> str:
    """The dataset folder: ``--data`` when given and present, else rendered into it (or a temp dir)."""
    import mitsuba as mi

    from rvs_mi.optimize.dataset import render_dataset
    folder = args.data or tempfile.mkdtemp(prefix="bench_nerf_data_")
    if os.path.isfile(os.path.join(folder, "transforms_test.json")):
        return folder
    scene = mi.load_file(SCENE)
    t0 = time.perf_counter()
    render_dataset(scene, folder, args.views, args.res, test_views=args.test_views, spp=args.spp,
                   radius=args.radius, seed=0)
    print(f"dataset: {args.views} + {args.test_views} views at {args.res}^2, {args.spp} spp -> {folder} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return folder


def steps_of(args, method: str) -> int:
    """Training steps of ``method``: its ``--steps-of METHOD=N``, else ``--steps``."""
    for item in args.steps_of or []:
        name, _, n = item.partition("=")
        if name == method:
            return int(n)
    return args.steps


def schedule(args, steps: int) -> list:
    """Steps before which the grids double: ``--stages`` equal parts of ``steps``."""
    return [steps * k // args.stages for k in range(1, args.stages)]


def equal_grid_step(times: list, first: int) -> float:
    """Mean of ``times`` (seconds per step) from step ``first + 1`` on."""
    tail = times[first + 1:]
    return sum(tail) / len(tail) if tail else float("nan")


def run_tutorial(folder: str, args) -> dict:
    import numpy as np
    from anchors import tutorial_rf

    from rvs_mi.optimize import metrics
    from rvs_mi.optimize.dataset import load_dataset
    white = (1.0, 1.0, 1.0)
    train = load_dataset(folder, "train", background=white, spp=1)
    test = load_dataset(folder, "test", background=white, spp=args.eval_spp)
    steps = steps_of(args, "tutorial")
    cpu0 = time.process_time()
    scene, times = tutorial_rf.train(train, args.box, steps=steps, upsample_at=schedule(args, steps),
                                     lr=args.tutorial_lr, res=16, background=white, seed=args.seed,
                                     log=lambda s: print("  " + s, file=sys.stderr, flush=True))
    cpu = time.process_time() - cpu0
    images = [tutorial_rf.render(scene, s, args.eval_spp, seed=12345) for s in test.sensors]
    score = {name: float(np.mean([fn(img, ref) for img, ref in zip(images, test.images)]))
             for name, fn in (("psnr", metrics.psnr), ("ssim", metrics.ssim), ("psnr_linear", metrics.psnr_linear))}
    walls = [t for t, _ in times]
    return {**score, "steps": steps, "step_s": sum(walls) / len(walls), "cpu_s": cpu,
            "equal_step_s": equal_grid_step(walls, schedule(args, steps)[-1] if args.stages > 1 else 0)}


def run_ours(method: str, folder: str, args) -> dict:
    from rvs_mi.optimize import load_config, run_optimization
    out = os.path.join(args.out, method)
    steps = steps_of(args, method)
    overrides = [f'references.dataset="{os.path.abspath(folder)}"', f"optimize.steps={steps}",
                 f"optimize.seed={args.seed}", f"upsample.at_steps={schedule(args, steps)}",
                 f"volume.bounds={list(args.box)}", f"output.eval_spp={args.eval_spp}",
                 "output.checkpoint_every=0"] + list(args.set or [])
    config = load_config(os.path.join(HERE, "configs", f"nerf_{method}.toml"), overrides)
    summary = run_optimization(config, out, progress=False)
    with open(os.path.join(out, "metrics.csv")) as f:
        elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(f)]
    walls = [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed)]
    timing = summary.get("timing", {}).get("steps", {})
    return {"psnr": summary["psnr_final"], "ssim": summary["ssim_final"], "psnr_linear": summary["psnr_linear_final"],
            "steps": steps, "step_s": summary["time_s"] / max(summary["steps"], 1),
            "cpu_s": timing.get("cpu_s", float("nan")),
            "equal_step_s": equal_grid_step(walls, schedule(args, steps)[-1] if args.stages > 1 else 0), "out": out}


def print_table(results: list, args, folder: str) -> None:
    final = 16 * 2 ** (args.stages - 1)
    print(f"\nscenes/nerf_object.xml, dataset {folder}: grids 16^3 -> {final}^3, doubling at equal fractions of "
          f"each method's steps ({schedule(args, args.steps)} for {args.steps}), box {list(args.box)}, 1 view per "
          f"step at 1 spp; held-out views rendered at {args.eval_spp} spp; LLVM, {os.cpu_count()} CPU threads")
    print(f"| method | steps | PSNR sRGB (dB) | SSIM sRGB | PSNR linear (dB) | s/step | s/step @{final}^3 | CPU s "
          "| peak RSS (MB) | RSS at start (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['psnr_linear']:.2f} | {r['step_s']:.3f} | "
              f"{r['equal_step_s']:.3f} | {r['cpu_s']:.0f} | {r['rss_mb']:.0f} | {r['rss_start_mb']:.0f} |")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset folder: reused when it holds one, else rendered into it")
    ap.add_argument("--views", type=int, default=40, help="training views of a rendered dataset")
    ap.add_argument("--test-views", type=int, default=8, help="held-out views of a rendered dataset")
    ap.add_argument("--res", type=int, default=64, help="image width = height of a rendered dataset")
    ap.add_argument("--spp", type=int, default=64, help="path-tracer spp of a rendered dataset")
    ap.add_argument("--radius", type=float, default=3.3, help="camera distance of a rendered dataset")
    ap.add_argument("--steps", type=int, default=300, help="training steps of every method")
    ap.add_argument("--steps-of", action="append", metavar="METHOD=N",
                    help="training steps of one method (e.g. rvs=600; repeatable): equal-CPU-time comparisons")
    ap.add_argument("--stages", type=int, default=3, help="grid resolutions 16^3 x 2^k, k < stages")
    ap.add_argument("--box", type=float, nargs=6, default=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0],
                    metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"), help="world-space box of the grids")
    ap.add_argument("--methods", nargs="+", default=["tutorial", "rvs", "volquad"], choices=METHODS)
    ap.add_argument("--eval-spp", type=int, default=16, help="spp of the held-out renders")
    ap.add_argument("--tutorial-lr", type=float, default=0.2, help="Adam learning rate of the tutorial recipe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", help="more overrides section.key=value of our configs")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench_nerf"), help="output folder of our runs")
    ap.add_argument("--json", help="also write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    sys.path.insert(0, HERE)
    import rvs_mi
    rvs_mi.init(variant())
    folder = make_dataset(args)
    results = []
    for name in args.methods:
        start = peak_rss_reset()
        t0 = time.perf_counter()
        r = run_tutorial(folder, args) if name == "tutorial" else run_ours(name, folder, args)
        results.append({"name": name, **r, "rss_mb": rss_mb(), "rss_start_mb": start})
        print(f"{name}: PSNR {r['psnr']:.2f} dB, {r['step_s']:.3f} s/step ({time.perf_counter() - t0:.0f} s "
              "with set-up and evaluation)", file=sys.stderr, flush=True)
    print_table(results, args, folder)
    write_json(args.json, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
