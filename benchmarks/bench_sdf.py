"""Cost of the SDF boundary warp: sdf_naive vs sdf_reparam (top_k = 0 and 8).

One forward + backward step (render at RES², spp 1, L1 loss, backward to the
SDF parameters) per configuration, on the analytic torus (grad. w.r.t. the
radii and center) and on a 64³ grid SDF of the same torus (grad. w.r.t. all
grid values). Every configuration runs in its own subprocess, side by side in
one invocation; the first step (kernel compilation) is warm-up, the median of
the timed steps is reported.

Memory: the Dr.Jit allocation watermark of the LLVM backend during a timed
step above what was allocated when it began (``dr.flush_malloc_cache`` first,
or the watermark counts cached blocks; then ``malloc_clear_statistics`` and
``dr.detail.malloc_watermark``), i.e. the step's peak of JIT-allocated
buffers, and the process peak RSS (``ru_maxrss``, includes Python, Mitsuba
and compilation).

Kept points: the sphere tracer takes ``max_steps`` points per ray; with
top_k = 8 the warp records all of them (``trace.sphere_trace``) and its
backward pass keeps the source evaluations of the 8 selected ones. With
top_k = 0 (``warp_streaming.streaming_warp``) nothing is recorded: every
point is summed inside the tracing loop and reverse mode replays it. We also
report the fraction of the *active* points (those before the trace converges
or leaves the bound) that top_k = 8 keeps, the number comparable to the
paper's ~35% (k = 7 of ~22 steps).

    python benchmarks/bench_sdf.py [--res 128] [--steps 7] [--max-steps 32]
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

import numpy as np

from common import variant, write_json

CONFIGS = [("sdf_naive", 8), ("sdf_reparam", 0), ("sdf_reparam", 8)]
SCENES = ("torus", "grid64")


def torus_grid(n=64, R=0.8, r=0.3, half=1.2):
    c = (np.arange(n) + 0.5) / n * 2 * half - half
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return (np.sqrt((np.sqrt(x * x + y * y) - R) ** 2 + z * z) - r).astype(np.float32)


def build_scene(kind, integrator, top_k, res, max_steps, albedo_file):
    import mitsuba as mi
    integ = {"type": integrator, "top_k": top_k, "max_steps": max_steps, "shading": "diffuse",
             "albedo": {"type": "gridvolume", "filename": albedo_file, "use_grid_bbox": False,
                        "to_world": mi.ScalarTransform4f().translate([-1.2] * 3).scale(2.4)}}
    if kind == "torus":
        integ.update({"sdf_shape": "torus", "sdf_radius": 0.8, "sdf_minor_radius": 0.3})
    else:
        integ["sdf"] = {"type": "gridvolume", "grid": mi.VolumeGrid(torus_grid()[..., None]),
                        "use_grid_bbox": False,
                        "to_world": mi.ScalarTransform4f().translate([-1.2] * 3).scale(2.4)}
    return mi.load_dict({
        "type": "scene", "integrator": integ,
        "light": {"type": "directional", "direction": [0.15, 2.6, -3.2], "irradiance": {"type": "rgb", "value": 3.0}},
        "sensor": {"type": "perspective", "fov": 38,
                   "to_world": mi.ScalarTransform4f().look_at(origin=[0, -2.6, 3.2], target=[0, 0, 0], up=[0, 0, 1]),
                   "sampler": {"type": "independent", "sample_count": 1},
                   "film": {"type": "hdrfilm", "width": res, "height": res, "rfilter": {"type": "box"}}},
    })


def timed_step(scene, params, keys, target, step) -> float:
    """Seconds of one forward + backward step (render at spp 1, L1 loss, gradients evaluated)."""
    import drjit as dr
    import mitsuba as mi
    for k in keys:
        dr.enable_grad(params[k])
    params.update()
    dr.sync_thread()
    t0 = time.perf_counter()
    image = mi.render(scene, params, spp=1, seed=2 * step + 1, seed_grad=2 * step + 2)
    dr.backward(dr.mean(dr.abs(image - target * 1.05), axis=None))
    dr.eval(*[dr.grad(params[k]) for k in keys])
    dr.sync_thread()
    seconds = time.perf_counter() - t0
    for k in keys:
        dr.disable_grad(params[k])
    return seconds


def interleaved(args) -> dict:
    """sdf_reparam (top_k 0) over sdf_naive, their steps alternating in one process: the median
    of the per-pair time ratios (robust to the machine's speed drifting between processes)."""
    import drjit as dr
    import mitsuba as mi
    import rvs_mi
    rvs_mi.init(variant())
    runs = []
    for integrator, k in (("sdf_naive", 8), ("sdf_reparam", 0)):
        scene = build_scene(args.scene, integrator, k, args.res, args.max_steps, args.albedo)
        params = mi.traverse(scene)
        with dr.suspend_grad():
            target = mi.render(scene, spp=4, seed=1000)
        runs.append((scene, params, [key for key in params.keys() if key.startswith("integrator.sdf")], target))
    for run in runs:
        timed_step(*run, 0)                         # warm-up: compilation
    pairs = [[timed_step(*run, step) for run in runs] for step in range(1, 1 + args.steps)]
    ratios = [b / a for a, b in pairs]
    return {"scene": args.scene, "ratio": float(np.median(ratios)), "ratios": ratios,
            "naive_s": float(np.median([a for a, _ in pairs])), "reparam_s": float(np.median([b for _, b in pairs]))}


def worker(args) -> dict:
    import drjit as dr
    import mitsuba as mi
    import rvs_mi
    rvs_mi.init(variant())
    scene = build_scene(args.scene, args.integrator, args.top_k, args.res, args.max_steps, args.albedo)
    params = mi.traverse(scene)
    keys = [k for k in params.keys() if k.startswith("integrator.sdf")]
    with dr.suspend_grad():
        target = mi.render(scene, spp=4, seed=1000)
    times, marks = [], []
    for step in range(1 + args.steps):
        for k in keys:
            dr.enable_grad(params[k])
        params.update()
        dr.sync_thread()
        dr.flush_malloc_cache()          # else the watermark counts Dr.Jit's cached blocks
        dr.detail.malloc_clear_statistics()
        base = dr.detail.malloc_watermark(dr.JitBackend.LLVM)
        t0 = time.perf_counter()
        image = mi.render(scene, params, spp=1, seed=2 * step + 1, seed_grad=2 * step + 2)
        loss = dr.mean(dr.abs(image - target * 1.05), axis=None)
        dr.backward(loss)
        dr.eval(*[dr.grad(params[k]) for k in keys])
        dr.sync_thread()
        if step >= 1:
            times.append(time.perf_counter() - t0)
            marks.append(dr.detail.malloc_watermark(dr.JitBackend.LLVM) - base)
        for k in keys:
            dr.disable_grad(params[k])
    for k in keys:
        dr.enable_grad(params[k])
    params.update()
    profile = kernel_profile(lambda: mi.render(scene, params, spp=1, seed=1, seed_grad=2),
                             lambda image: dr.backward(dr.mean(dr.abs(image - target * 1.05), axis=None)),
                             lambda: dr.eval(*[dr.grad(params[k]) for k in keys]), args.res)
    return {"scene": args.scene, "integrator": args.integrator, "top_k": args.top_k,
            "step_s": float(np.median(times)), "jit_peak_mb": max(marks) / 2 ** 20,
            "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "profile": profile}


def kernel_profile(render, backward, finish, res) -> dict:
    """Kernel time (ms) of one step (render, then the backward pass with its AD re-render) by
    what each kernel traces, from Dr.Jit's kernel history: the loop labels in its IR and its
    width (a res² image at spp 1: edge lanes are 2·res² + 2·res wide); "wall": that step's
    wall time. Kernels may run concurrently, so their times can add up to more than it."""
    import drjit as dr
    with dr.scoped_set_flag(dr.JitFlag.KernelHistory):
        dr.kernel_history()                         # (empties it)
        dr.sync_thread()
        t0 = time.perf_counter()
        image = render()
        dr.eval(image)
        backward(image)
        finish()
        dr.sync_thread()
        wall = 1000 * (time.perf_counter() - t0)
        kernels = dr.kernel_history([dr.KernelType.JIT])
    out = {"wall": wall}
    for k in kernels:
        ir = k.get("ir", "")
        ir = ir.getvalue() if hasattr(ir, "getvalue") else str(ir)
        if "sdf_trace_warp" in ir:
            name = "edge lanes (V)" if k["size"] == 2 * res * res + 2 * res else "interior lanes (V, div V)"
        elif "sdf_sphere_trace" in ir:
            name = "plain traces"
        else:
            name = "other"
        out[name] = out.get(name, 0.0) + float(k["execution_time"])
    return out


def active_fraction(res, max_steps, top_k) -> dict:
    """Mean active points per ray and the fraction of them top_k keeps (analytic torus)."""
    import drjit as dr
    import mitsuba as mi
    import rvs_mi
    rvs_mi.init(variant())
    from rvs_mi.sdf.bundle import RayBundle
    from rvs_mi.sdf.camera import Projection
    from rvs_mi.sdf.trace import sphere_trace
    with tempfile.TemporaryDirectory() as tmp:
        from rvs_mi.figures.noise import write_noise_albedo
        alb = write_noise_albedo(os.path.join(tmp, "a.vol"))
        scene = build_scene("torus", "sdf_reparam", top_k, res, max_steps, alb)
    integ = scene.integrator()
    proj = Projection.from_sensor(scene.sensors()[0])
    g = (np.arange(res) + 0.5)
    X, Y = np.meshgrid(g, g)
    u = mi.Vector2f(X.ravel(), Y.ravel())
    with dr.suspend_grad():
        ray = RayBundle.through(proj, integ.source, u)
        tr = sphere_trace(integ.source, ray, integ.options)
        t = np.array(tr.points.t).reshape(-1, max_steps)
    moving = np.abs(np.diff(t, axis=1)) > 1e-5          # step i -> i+1 still moves
    active = 1 + moving.sum(axis=1)
    rays = np.array(ray.t1) > np.array(ray.t0)          # the bound's interval is [0, 0] on a miss
    act = active[rays]
    kept = np.minimum(act, top_k if top_k else max_steps)
    return {"rays_in_bound": int(rays.sum()), "mean_active_points": float(act.mean()),
            "kept_fraction_of_active": float(np.mean(kept / act)),
            "kept_fraction_of_all": (top_k if top_k else max_steps) / max_steps}


def _run_worker(options):
    """The RESULT of ``bench_sdf.py --worker OPTIONS`` in a subprocess (None, reported, if it
    failed)."""
    out = subprocess.run([sys.executable, __file__, "--worker"] + options, capture_output=True, text=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        print(f"{' '.join(options[:6])}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(line[0][7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--max-steps", type=int, default=32)
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scene", help=argparse.SUPPRESS)
    ap.add_argument("--integrator", help=argparse.SUPPRESS)
    ap.add_argument("--top-k", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--albedo", help=argparse.SUPPRESS)
    ap.add_argument("--interleaved", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(interleaved(args) if args.interleaved else worker(args)))
        return 0

    rows, alternating = [], []
    with tempfile.TemporaryDirectory() as tmp:
        import rvs_mi
        rvs_mi.init(variant())
        from rvs_mi.figures.noise import write_noise_albedo
        alb = write_noise_albedo(os.path.join(tmp, "albedo.vol"))
        common = ["--res", str(args.res), "--steps", str(args.steps), "--max-steps", str(args.max_steps),
                  "--albedo", alb]
        # the cheap configurations of every scene first: top_k = 0 compiles a kernel
        # with max_steps warp slots, which takes minutes on a small CPU
        order = [(kind, c) for c in CONFIGS if c[1] != 0 for kind in args.scenes.split(",")]
        order += [(kind, c) for c in CONFIGS if c[1] == 0 for kind in args.scenes.split(",")]
        for kind, (integrator, k) in order:
            t0 = time.perf_counter()
            row = _run_worker(["--scene", kind, "--integrator", integrator, "--top-k", str(k)] + common)
            if row is None:
                continue
            row["process_s"] = time.perf_counter() - t0
            rows.append(row)
            print(f"  {kind:7s} {integrator:12s} top_k={k}: {row['step_s']:.3f} s/step, "
                  f"JIT peak {row['jit_peak_mb']:.1f} MB, RSS {row['rss_peak_mb']:.0f} MB "
                  f"(process {row['process_s']:.0f} s incl. compile)", flush=True)
        for kind in args.scenes.split(","):
            r = _run_worker(["--interleaved", "--scene", kind] + common)
            if r is not None:
                alternating.append(r)

    print(f"\nforward+backward, {args.res}x{args.res}, spp 1, max_steps {args.max_steps} "
          f"(median of {args.steps} steps; ratios vs sdf_naive of the same scene)")
    print(f"{'scene':8s} {'integrator':12s} {'top_k':>5s} {'s/step':>8s} {'x naive':>8s} "
          f"{'JIT MB':>8s} {'x naive':>8s} {'RSS MB':>8s}")
    for row in rows:
        ref = next((r for r in rows if r["scene"] == row["scene"] and r["integrator"] == "sdf_naive"), None)
        rt = row["step_s"] / ref["step_s"] if ref else float("nan")
        rm = row["jit_peak_mb"] / ref["jit_peak_mb"] if ref and ref["jit_peak_mb"] > 0 else float("nan")
        print(f"{row['scene']:8s} {row['integrator']:12s} {row['top_k']:5d} {row['step_s']:8.3f} {rt:8.2f} "
              f"{row['jit_peak_mb']:8.1f} {rm:8.2f} {row['rss_peak_mb']:8.0f}")
    for row in rows:
        k0 = next((r for r in rows if r["scene"] == row["scene"] and r["integrator"] == "sdf_reparam"
                   and r["top_k"] == 0), None)
        if row["integrator"] == "sdf_reparam" and row["top_k"] == 8 and k0:
            print(f"{row['scene']}: top_k=8 vs all points: time x{row['step_s'] / k0['step_s']:.2f}, "
                  f"JIT memory x{row['jit_peak_mb'] / max(k0['jit_peak_mb'], 1e-9):.2f}")

    print(f"\nsdf_reparam (top_k 0) / sdf_naive, steps alternating in one process ({args.steps} pairs, "
          "median of the pairs' ratios):")
    for r in alternating:
        print(f"  {r['scene']:7s} x{r['ratio']:.2f} (naive {1000 * r['naive_s']:.0f} ms, reparam "
              f"{1000 * r['reparam_s']:.0f} ms; pair ratios {min(r['ratios']):.2f}-{max(r['ratios']):.2f})")

    print("\none more step (ms), with Dr.Jit's kernel history: its wall time, and kernel time by what"
          " the kernels trace (plain traces: the primal image, sdf_naive's rays, the pixel centres of"
          " the control variate; kernels may overlap):")
    for row in rows:
        if row["integrator"] == "sdf_reparam" and row["top_k"] != 0:
            continue                # (its recorded traces are not told apart from plain ones)
        prof = dict(row["profile"])
        wall = prof.pop("wall")
        parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(prof.items(), key=lambda kv: -kv[1]))
        print(f"  {row['scene']:7s} {row['integrator']:12s} top_k={row['top_k']}: wall {wall:.0f}, "
              f"kernels {sum(prof.values()):.0f} = {parts}")

    frac = active_fraction(args.res, args.max_steps, 8)
    print(f"\ntracer points kept for the backward pass (torus, top_k=8, max_steps {args.max_steps}): "
          f"{frac['kept_fraction_of_all']:.1%} of all points; mean active points per ray "
          f"{frac['mean_active_points']:.1f} -> {frac['kept_fraction_of_active']:.1%} of the active ones "
          f"(paper: ~35% at k=7 of 22)")
    write_json(args.json, {"rows": rows, "alternating": alternating, "kept": frac, "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
