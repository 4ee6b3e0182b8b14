"""RVS vs quadrature: time per optimization step, peak memory, radiance queries, image error.

    .venv/bin/python benchmarks/bench_rvs.py                     # 64³ grids, 128² (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_rvs.py --res 64 --grid 32  # quicker

Scene: a 64³ density grid and a degree-2 SH radiance grid (27 channels) in
[-1, 1]³, seen at 128×128 (1 spp) by a perspective camera. One optimization
step = render with gradients enabled on both grids + L1 loss + backward +
evaluating the gradients. ``rvs`` with ``--samples`` radiance samples per ray,
``rvs_hier`` (``--hier`` = coarse knots:fine samples) and ``volquad``, all with
``--knots`` density knots. Each configuration runs in its own process, steps
after ``--warmup`` (JIT compilation) are timed; ratios are relative to volquad
in the same run (other processes on the machine slow every configuration
alike only if they run for the whole benchmark — repeat to check; the min
step time is the least disturbed by them).

Memory: the Dr.Jit allocation watermark of the LLVM backend during the timed
steps (``dr.detail.malloc_watermark``: "peak" in all, "step" above what was
allocated when the step began — the step's working memory), and the process's
peak RSS.

Step time: wall clock (median and min) and CPU time of the process (median;
all threads, barely affected by other processes, unlike wall time).

Image error: RMSE against a dense reference (``volquad`` with ``--ref-knots``
knots, ``--ref-spp`` samples per pixel, rendered in strips), of one 1-spp
image (what a step sees; includes pixel anti-aliasing noise common to all
methods) and of the mean of ``--avg`` 1-spp images (bias + noise/√avg).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from common import variant, write_json


def _fields(grid: int, seed: int = 0):
    import numpy as np
    rng = np.random.default_rng(seed)
    c = (np.arange(grid) + 0.5) / grid
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.5) ** 2)
    density = 30 * np.clip(1 - r / 0.4, 0, 1) + 0.3 * rng.random((grid,) * 3)   # a solid-ish blob in fog
    radiance = 0.2 * rng.standard_normal((grid, grid, grid, 27))
    radiance[..., :3] += 1.5
    return density.astype(np.float32), radiance.astype(np.float32)


def _scene_dict(name, options, args):
    from rvs_mi.volume.scene import volume_scene_dict
    density, radiance = _fields(args.grid)
    return volume_scene_dict(density, radiance, name, options, resolution=(args.res, args.res),
                             camera="perspective", origin=(1.6, 1.1, 3.2), fov=45,
                             background=(0.1, 0.1, 0.1))


def _options(config: str, knots: int) -> tuple[str, dict]:
    name, _, arg = config.partition(":")
    if name == "rvs":
        return name, {"knots": knots, "samples": int(arg)}
    if name == "rvs_hier":
        coarse, fine = (int(v) for v in arg.split("/"))
        return name, {"coarse_knots": coarse, "fine_samples": fine}
    return name, {"knots": int(arg) if arg else knots}


def reference(args, path: str) -> None:
    """Dense reference image (volquad, many knots, many spp), rendered in strips of rows."""
    import drjit as dr
    import mitsuba as mi
    import numpy as np
    import rvs_mi
    rvs_mi.init(variant())
    d = _scene_dict("volquad", {"knots": args.ref_knots}, args)
    sensor_dict = dict(d["sensor"])
    scene = mi.load_dict(d)
    rows = max(1, args.ref_chunk // args.res)
    out = np.zeros((args.res, args.res, 3), np.float64)
    for y0 in range(0, args.res, rows):
        h = min(rows, args.res - y0)
        s = dict(sensor_dict)
        s["film"] = {**sensor_dict["film"], "crop_offset_x": 0, "crop_offset_y": y0,
                     "crop_width": args.res, "crop_height": h}
        sensor = mi.load_dict(s)
        acc = np.zeros((h, args.res, 3))
        for k in range(args.ref_spp):
            with dr.suspend_grad():
                acc += np.array(mi.render(scene, sensor=sensor, spp=1, seed=1000 + k))
        out[y0:y0 + h] = acc / args.ref_spp
    np.save(path, out.astype(np.float32))


def worker(config: str, args) -> dict:
    import drjit as dr
    import mitsuba as mi
    import numpy as np
    import rvs_mi

    rvs_mi.init(variant())
    name, options = _options(config, args.knots)
    scene = mi.load_dict(_scene_dict(name, options, args))
    integrator = scene.integrator()
    params = mi.traverse(scene)
    keys = ["volume.density.data", "volume.radiance.data"]
    params.keep(keys)
    target = mi.TensorXf(np.full((args.res, args.res, 3), 0.5, np.float32))

    # count radiance queries (points handed to the radiance field) per ray and pass
    counter = {"points": 0, "calls": 0}
    field_eval = integrator.radiance.eval

    def counting_eval(p, active=True):     # sample() queries the radiance field once, batched
        counter["points"] += dr.width(p)
        counter["calls"] += 1
        return field_eval(p, active)
    integrator.radiance.eval = counting_eval

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpus, marks = [], [], []
    for step in range(args.warmup + args.steps):
        for k in keys:
            dr.enable_grad(params[k])
        params.update()
        counter["points"] = counter["calls"] = 0
        dr.sync_thread()
        dr.flush_malloc_cache()          # else the watermark counts Dr.Jit's cached blocks
        dr.detail.malloc_clear_statistics()
        base = dr.detail.malloc_watermark(dr.JitBackend.LLVM)    # what is allocated before the step
        t0, c0 = time.perf_counter(), time.process_time()
        image = mi.render(scene, params, spp=1, seed=2 * step + 1, seed_grad=2 * step + 2)
        loss = dr.mean(dr.abs(image - target), axis=None)
        dr.backward(loss)
        grads = [dr.grad(params[k]) for k in keys]
        dr.eval(*grads)
        dr.sync_thread()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if step >= args.warmup:
            times.append(elapsed)
            cpus.append(cpu)
            marks.append((dr.detail.malloc_watermark(dr.JitBackend.LLVM), base))
        for k in keys:
            dr.disable_grad(params[k])
    rays = args.res * args.res
    queries = counter["points"] / max(counter["calls"], 1) / rays   # the reverse pass re-runs sample(): per pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    ref = np.load(args.ref_path)
    imgs = []
    with dr.suspend_grad():
        for k in range(args.avg):
            imgs.append(np.array(mi.render(scene, spp=1, seed=5000 + k), dtype=np.float64))
    one = float(np.sqrt(np.mean((imgs[0] - ref) ** 2)))
    avg = float(np.sqrt(np.mean((np.mean(imgs, axis=0) - ref) ** 2)))
    return {"config": config, "step_s": float(np.median(times)), "step_min_s": float(np.min(times)),
            "step_cpu_s": float(np.median(cpus)),
            "jit_peak_mb": max(m for m, _ in marks) / 2 ** 20,
            "jit_step_mb": max(m - b for m, b in marks) / 2 ** 20, "peak_rss_mb": peak / 1024,
            "base_rss_mb": base_rss / 1024, "radiance_queries_per_ray": queries,
            "rmse_1spp": one, "rmse_avg": avg}


def _common(args):
    return [f"--{k}={v}" for k, v in (("res", args.res), ("grid", args.grid), ("knots", args.knots),
                                      ("steps", args.steps), ("warmup", args.warmup), ("avg", args.avg),
                                      ("ref-knots", args.ref_knots), ("ref-spp", args.ref_spp),
                                      ("ref-chunk", args.ref_chunk), ("ref-path", args.ref_path))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--knots", type=int, default=128)
    parser.add_argument("--samples", default="1,2,4,8,16,32", help="rvs radiance samples per ray")
    parser.add_argument("--hier", default="64/64", help="rvs_hier coarse knots/fine samples ('' to skip)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--avg", type=int, default=8, help="1-spp images averaged for the image error")
    parser.add_argument("--ref-knots", type=int, default=1024)
    parser.add_argument("--ref-spp", type=int, default=16)
    parser.add_argument("--ref-chunk", type=int, default=2048, help="pixels per reference strip")
    parser.add_argument("--ref-path", default="")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.reference:
        reference(args, args.ref_path)
        return 0
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args)), flush=True)
        return 0

    tmp = tempfile.mkdtemp(prefix="bench_rvs_")
    args.ref_path = os.path.join(tmp, "reference.npy")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--reference"] + _common(args),
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"reference failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"  reference: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    configs = [f"volquad:{args.knots}"] + [f"rvs:{s}" for s in args.samples.split(",") if s]
    if args.hier:
        configs.append(f"rvs_hier:{args.hier}")
    results = []
    for config in configs:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", config] + _common(args)
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode != 0 or not line:
            print(f"{config}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(line[0][7:]))
        print(f"  done {config}: {results[-1]['step_s']:.3f} s/step", file=sys.stderr, flush=True)

    ref = results[0]
    print(f"\nLLVM ({os.cpu_count()} CPU threads), {args.res}x{args.res} rays at 1 spp, {args.grid}^3 density + "
          f"SH2 radiance (27 ch), {args.knots} density knots (rvs_hier: coarse/fine), median of {args.steps} "
          f"steps (render + backward); reference: volquad {args.ref_knots} knots, {args.ref_spp} spp\n")
    print("| integrator | radiance queries/ray | step (s) | min step (s) | step vs volquad | step CPU (s) | CPU vs volquad | Dr.Jit peak (MB) | Dr.Jit step (MB) "
          "| step memory vs volquad | peak RSS (MB) | RMSE 1 spp | RMSE mean of %d |" % args.avg)
    print("|" + "---|" * 13)
    for r in results:
        print(f"| {r['config']} | {r['radiance_queries_per_ray']:.0f} | {r['step_s']:.3f} | {r['step_min_s']:.3f} | "
              f"x{ref['step_s'] / r['step_s']:.2f} faster | {r['step_cpu_s']:.2f} | "
              f"x{ref['step_cpu_s'] / r['step_cpu_s']:.2f} less | {r['jit_peak_mb']:.0f} | {r['jit_step_mb']:.1f} | "
              f"x{ref['jit_step_mb'] / max(r['jit_step_mb'], 1e-9):.2f} less | {r['peak_rss_mb']:.0f} | "
              f"{r['rmse_1spp']:.4f} | {r['rmse_avg']:.4f} |")
    write_json(args.json, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
