"""Pixel samplers on inverse problems: full images vs uniform vs adaptive sparse pixels.

Three inverse problems (``--problem``):

- ``texture`` (1): an albedo texture with ``prb`` from 4 views of a textured
  plane (direct light under a constant sky plus a point light);
  ``--pattern concentrated`` (grey except a detailed patch, ≈ 10 % of the
  texture: the error is concentrated) or ``spread`` (random everywhere).
- ``volume`` (2): density and RGB radiance grids of an emission–absorption
  volume with ``rvs`` from 8 views on a ring (two small dense blobs in a faint haze).
- ``sdf`` (3): centre and radius of an analytic SDF sphere with
  ``sdf_reparam`` from 4 views (``scenes/fit_sdf_sphere.xml``). ``sdf_reparam``
  does not render through Mitsuba's flat sensor (it traces its own pixel
  samples and pixel-edge flux terms through the real sensor's projection);
  ``render_pixels`` hands it the pixel list, which it renders with the same
  estimator.

Each method (``full``; ``uniform``/``adaptive`` with N = ``--budgets`` of the
pixels) runs for the same time budget per seed — by default in CPU seconds of
the process (``--clock cpu``, all threads: other processes on a shared machine
then barely change the budget; on an idle 2-core machine a kernel-bound step's
CPU time is ≈ 2× its wall time), or wall-clock seconds (``--clock wall``);
every ``--eval-every`` seconds (clock paused) it records the parameter error (RMSE against the
truth) and the MSE of a held-out view. Prints one line per run and a table
(means over seeds), and writes ``bench_sampling_<problem>.json`` and a plot
(errors vs time and vs rendered samples) to ``--out``.

    .venv/bin/python benchmarks/bench_sampling.py --problem texture       # 3-6 min each on 2 cores
    .venv/bin/python benchmarks/bench_sampling.py --problem volume
    .venv/bin/python benchmarks/bench_sampling.py --problem sdf
    .venv/bin/python benchmarks/bench_sampling.py --problem volume --seconds 60 --seeds 0 1 2 3 4 --budgets 0.05 0.1

Goals checked in the table: adaptive reaches uniform's final error in ≤ 0.5× uniform's time,
and full's final error in ≤ 1/3 of full's time. At the sizes users have:

    .venv/bin/python benchmarks/bench_sampling.py --problem volume --size 256 --views 8 --view-choice all
Methods are interleaved per seed so that load changes hit all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


# ---------------------------------------------------------------------------- cameras
def perspective(origin, size, fov=45.0, target=(0, 0, 0), up=(0, 1, 0), spp=4):
    import mitsuba as mi
    return mi.load_dict({
        "type": "perspective", "fov": fov,
        "to_world": mi.ScalarTransform4f().look_at(origin=list(origin), target=list(target), up=list(up)),
        "film": {"type": "hdrfilm", "width": size, "height": size, "pixel_format": "rgb",
                 "rfilter": {"type": "box"}},
        "sampler": {"type": "independent", "sample_count": spp}})


def render(scene, sensor, spp, seed, params=None):
    import drjit as dr
    import mitsuba as mi
    if params is None:
        with dr.suspend_grad():
            return mi.render(scene, sensor=sensor, spp=spp, seed=seed)
    return mi.render(scene, params, sensor=sensor, spp=spp, seed=seed, seed_grad=seed + 1)


# ---------------------------------------------------------------------------- problem (1)
def truth_texture(pattern: str, res: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if pattern == "spread":
        return (0.15 + 0.7 * rng.random((res, res, 3))).astype(np.float32)
    tex = np.full((res, res, 3), 0.5, dtype=np.float32)
    a, b = res // 8, res // 8 + max(2, int(round(res * 0.32)))       # ≈ 10 % of the texels
    yy, xx = np.mgrid[a:b, a:b]
    checker = ((yy // 2 + xx // 2) % 2).astype(np.float32)
    patch = 0.1 + 0.8 * np.stack([checker, rng.random((b - a, b - a)), 1 - checker], axis=-1)
    tex[a:b, a:b] = patch
    return tex


def texture_scene(tex: np.ndarray):
    import mitsuba as mi
    return mi.load_dict({
        "type": "scene", "integrator": {"type": "prb", "max_depth": 2},
        "plane": {"type": "rectangle", "bsdf": {"type": "diffuse", "reflectance": {
            "type": "bitmap", "data": mi.TensorXf(tex), "raw": True, "filter_type": "bilinear"}}},
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.6}},
        "light": {"type": "point", "position": [1.0, 1.5, 2.0], "intensity": {"type": "rgb", "value": 4.0}}})


TEXTURE_VIEWS = [(-0.6, -0.4, 2.6), (0.6, -0.4, 2.6), (-0.5, 0.5, 2.6), (0.5, 0.5, 2.6)]


def texture_views(n: int):
    """n views of the plane: the four above, then more on a circle of radius 0.7 at z = 2.6."""
    if n <= len(TEXTURE_VIEWS):
        return TEXTURE_VIEWS[:n]
    a = 2 * np.pi * np.arange(n - len(TEXTURE_VIEWS)) / (n - len(TEXTURE_VIEWS)) + 0.4
    return TEXTURE_VIEWS + [(float(0.7 * np.cos(t)), float(0.7 * np.sin(t)), 2.6) for t in a]
TEXTURE_HELDOUT = (0.0, 0.1, 2.6)
TEXTURE_KEY = "plane.bsdf.reflectance.data"


def texture_problem(args):
    truth = truth_texture(args.pattern, args.tex)
    init = np.full_like(truth, 0.5)
    return {"name": f"{args.pattern} albedo texture {args.tex}^2 (prb)", "integrator": "prb",
            "truth": {TEXTURE_KEY: truth}, "error_keys": [TEXTURE_KEY],
            "scene": lambda values: texture_scene(values.get(TEXTURE_KEY, init)),
            "views": texture_views(args.views or 4), "heldout": TEXTURE_HELDOUT, "fov": 45.0,
            "lr": lambda lr: {TEXTURE_KEY: lr}, "clamp": {TEXTURE_KEY: (0.0, 1.0)}}


# ---------------------------------------------------------------------------- problem (2)
def volume_truth(res: int):
    """Density (Z, Y, X, 1): two small dense blobs in a faint haze; RGB radiance varying in space."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, res),) * 3, indexing="ij")
    d = 0.2 + 14.0 * np.exp(-((x - 0.35) ** 2 + (y - 0.3) ** 2 + z ** 2) / 0.03) \
        + 10.0 * np.exp(-((x + 0.4) ** 2 + (y + 0.35) ** 2 + (z - 0.2) ** 2) / 0.02)
    c = np.stack([0.5 + 0.4 * x, 0.5 + 0.4 * y, 0.5 - 0.4 * z], axis=-1)
    return d[..., None].astype(np.float32), c.astype(np.float32)


VOLUME_KEYS = ("volume.density.data", "volume.radiance.data")


def _ring(n, radius):
    """n camera origins around the origin, alternating above and below the equator."""
    a = 2 * np.pi * np.arange(n) / n
    h = np.where(np.arange(n) % 2 == 0, 0.35, -0.35) * radius
    return [(float(np.sqrt(radius ** 2 - y ** 2) * np.sin(t)), float(y), float(np.sqrt(radius ** 2 - y ** 2) * np.cos(t)))
            for t, y in zip(a, h)]


def volume_problem(args):
    import mitsuba as mi
    from rvs_mi.volume.scene import volume_scene_dict
    density, radiance = volume_truth(args.grid)
    init = {VOLUME_KEYS[0]: np.full_like(density, 0.5), VOLUME_KEYS[1]: np.full_like(radiance, 0.5)}
    opts = {"knots": args.knots, "samples": args.samples}

    def scene(values):
        d = values.get(VOLUME_KEYS[0], init[VOLUME_KEYS[0]])
        c = values.get(VOLUME_KEYS[1], init[VOLUME_KEYS[1]])
        sd = volume_scene_dict(d, c, "rvs", opts, resolution=(8, 8), background=(0.1, 0.1, 0.1))
        return mi.load_dict(sd)

    return {"name": f"volume density + RGB radiance {args.grid}^3 (rvs, {args.knots} knots, {args.samples} samples)",
            "integrator": "rvs", "truth": {VOLUME_KEYS[0]: density, VOLUME_KEYS[1]: radiance},
            "error_keys": [VOLUME_KEYS[0]], "scene": scene,
            "views": _ring(args.views or 8, 3.6), "heldout": (-2.2, 2.0, 2.2), "fov": 45.0,
            "lr": lambda lr: {VOLUME_KEYS[0]: 10 * lr, VOLUME_KEYS[1]: lr},       # density spans 0..25
            "clamp": {VOLUME_KEYS[0]: (0.0, 40.0), VOLUME_KEYS[1]: (0.0, 2.0)}}


# ---------------------------------------------------------------------------- problem (3)
SDF_KEYS = ("sdf.sdf.center", "sdf.sdf.radius")
SDF_VIEWS = [(0.0, 0.5, 3.0), (2.6, 0.8, 1.2), (-2.4, 0.2, 1.6), (0.5, 2.4, -1.7)]


def sdf_problem(args):
    from rvs_mi import scenes
    from rvs_mi.scene import load_scene
    truth = {SDF_KEYS[0]: np.zeros(3, np.float32), SDF_KEYS[1]: np.array([0.5], np.float32)}
    start = {SDF_KEYS[0]: np.array([0.15, -0.1, 0.1], np.float32), SDF_KEYS[1]: np.array([0.35], np.float32)}

    def scene(values):
        c = values.get(SDF_KEYS[0], start[SDF_KEYS[0]])
        r = values.get(SDF_KEYS[1], start[SDF_KEYS[1]])
        defines = {"cx": str(float(c[0])), "cy": str(float(c[1])), "cz": str(float(c[2])),
                   "radius": str(float(r[0])), "res": "8"}
        return load_scene(str(scenes.path("fit_sdf_sphere.xml")), defines=defines)

    return {"name": "SDF sphere centre + radius (sdf_reparam renders the pixel list itself)",
            "integrator": "sdf_reparam", "truth": truth, "error_keys": list(SDF_KEYS), "scene": scene,
            "views": SDF_VIEWS[:args.views] if args.views and args.views <= 4 else
            SDF_VIEWS if not args.views else _ring(args.views, 3.1),
            "heldout": (-1.5, 1.5, -2.2), "fov": 40.0,
            "lr": lambda lr: {SDF_KEYS[0]: lr, SDF_KEYS[1]: lr},
            "clamp": {SDF_KEYS[1]: (0.05, 2.0)}}


PROBLEMS = {"texture": texture_problem, "volume": volume_problem, "sdf": sdf_problem}
# Per problem: image size, spp, wall seconds per run (default run ≲ 6 min on 2 cores), Adam
# learning rates of full images and of sparse pixels, picked from a short sweep (14 s, seed 0,
# lr ∈ {0.05, 0.02, 0.007}): sparse gradients are noisier, and with the larger lr the
# clamped volume density random-walks upwards.
DEFAULTS = {
    "texture": {"size": 128, "spp": 4, "seconds": 15.0, "lr": 0.02, "lr_sparse": 0.007},
    "volume": {"size": 128, "spp": 1, "seconds": 15.0, "lr": 0.02, "lr_sparse": 0.007},
    "sdf": {"size": 32, "spp": 2, "seconds": 30.0, "lr": 0.02, "lr_sparse": 0.02},
}


# ---------------------------------------------------------------------------- runs
def param_error(params, prob):
    err = np.concatenate([(np.array(params[k], dtype=np.float64).ravel() - prob["truth"][k].ravel())
                          for k in prob["error_keys"]])
    return float(np.sqrt(np.mean(err ** 2)))


def run_method(method, budget, args, seed, prob, refs, held_ref):
    import drjit as dr
    import mitsuba as mi
    from rvs_mi import sampling

    keys = list(prob["truth"])
    scene = prob["scene"]({})
    sensors = [perspective(o, args.size, prob["fov"], spp=args.spp) for o in prob["views"]]
    held = perspective(prob["heldout"], args.size, prob["fov"])
    params = mi.traverse(scene)
    params.keep(keys)
    opt = mi.ad.Adam(lr=0.01)
    for k in keys:
        opt[k] = params[k]
    lr0 = args.lr if method == "full" else args.lr_sparse

    def set_lr(lr):             # opaque, one array per key: a frozen step reads the current rate
        opt.set_learning_rate({k: dr.opaque(mi.Float, v) for k, v in prob["lr"](lr).items()})
    params.update(opt)
    sampler = None
    if method != "full":
        sampler = sampling.make_sampler(method, image_size=(args.size, args.size), n_views=len(sensors),
                                        budget=budget, beta=args.beta, rebuild_every=args.rebuild_every,
                                        tile=args.tile, statistic=args.statistic, view_choice=args.view_choice,
                                        seed=seed)
    fallback = prob.get("fallback", "error")
    core = make_core(args, prob, fallback)
    notes = []
    if args.freeze:
        from rvs_mi.optimize.frozen import FrozenCore, blocker
        core = FrozenCore(core, blocker(scene, params, keys, sparse=sampler is not None), notes.append)
    flat = {}                   # one flat sensor per batch size (a frozen step then replays)
    stacked = sampling.stack_references(refs)
    curve = []
    samples = 0
    clock = 0.0

    def evaluate(step):
        img = render(scene, held, args.eval_spp, 12345)
        curve.append({"step": step, "time_s": clock, "samples": samples, "param_err": param_error(params, prob),
                      "heldout_mse": float(np.mean((np.array(img) - held_ref) ** 2))})

    evaluate(0)
    next_eval = args.eval_every
    step = 0
    rng = np.random.default_rng([seed, 99])
    P = args.size * args.size
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    while clock < args.seconds:
        # fresh arrays each step (dr.opt scales the array it is given in place); exponential
        # decay over the run's budget: lr0 → lr0·lr_final
        set_lr(lr0 * args.lr_final ** (clock / args.seconds))
        t0 = now()
        s = (seed * 100003 + 2 * step) & 0x7FFFFFFF
        data = {"seed": dr.opaque(mi.UInt32, s)}
        if sampler is None:
            view = int(rng.integers(len(sensors)))
            data.update(sensor=sensors[view], reference=refs[view])
            n = P
        else:
            batch = sampler.draw(step)
            tangent = None
            if sampler.needs_tangent:      # random projection: two more primal renders of the batch
                _, tangent = sampling.render_pixels_tangent(scene, params, sensors, batch, keys, spp=args.spp,
                                                            seed=s + 7, direction_seed=s)
            if batch.size not in flat:
                flat[batch.size] = sampling.render.flat_sensor(sensors, batch.size, 3)
            flat[batch.size].pixel_idx = batch.flat_index
            ref = sampling.gather_reference(stacked, batch)
            data.update(sources=sensors, sensors=flat[batch.size], pixel=batch.pixel_index,
                        flat_pixel=flat[batch.size].pixel_idx, weight=batch.weight, reference=ref)
            if batch.view is not None and getattr(scene.integrator(), "render_pixels", None) is not None:
                data.update(sensor=sensors[batch.view], view=batch.view)  # one recording per view
            n = P if fallback == "full" else batch.size          # what was actually rendered
            if tangent is not None:
                n *= 3                          # the loss render and the tangent's two
        values = core(scene, params, opt, data)
        if sampler is not None:
            sampler.observe(batch, values, ref, tangent=tangent, kind=args.loss)
        params.update(opt)
        dr.eval([params[k] for k in keys])
        dr.sync_thread()       # the LLVM backend runs kernels asynchronously: wait before reading the clock
        clock += now() - t0
        samples += n * args.spp
        step += 1
        if clock >= next_eval:
            evaluate(step)
            next_eval += args.eval_every
    evaluate(step)
    return {"method": method, "budget": budget, "seed": seed, "steps": step, "curve": curve,
            "ms_per_step": 1e3 * clock / max(step, 1), "frozen": bool(args.freeze and not notes),
            "notes": notes}


def make_core(args, prob, fallback):
    """The Dr.Jit work of one step (``rvs_mi.optimize.step``'s render, loss and descent, without
    regularizers): the rendered values (detached). Its inputs are the step's arrays and objects
    only, so that ``FrozenCore`` can record and replay it."""
    import drjit as dr
    from rvs_mi.optimize.step import descend, render_loss
    clamps = [(k, lo, hi) for k, (lo, hi) in prob["clamp"].items()]

    def core(scene, params, opt, data):
        values, loss = render_loss(scene, params, data, args.spp, args.spp, args.loss, fallback=fallback)
        descend(opt, loss, clamps)
        return dr.detach(values)
    return core


def time_to_reach(curve, level, field, axis="time_s"):
    """First recorded ``axis`` value at which ``field`` ≤ level (inf if never)."""
    for point in curve:
        if point[field] <= level:
            return point[axis]
    return float("inf")


def _fmt_time(values):
    v = np.array(values, dtype=np.float64)
    fin = np.isfinite(v)
    if fin.all():
        return f"{v.mean():.1f}"
    if not fin.any():
        return "never"
    return f"{v[fin].mean():.1f} ({fin.sum()}/{len(v)} reached)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="texture")
    ap.add_argument("--size", type=int, help="image width = height (default per problem)")
    ap.add_argument("--spp", type=int, help="samples per pixel per step (default per problem)")
    ap.add_argument("--seconds", type=float, help="optimization wall time per run (default per problem)")
    ap.add_argument("--tex", type=int, default=32, help="texture resolution (texture)")
    ap.add_argument("--pattern", choices=["concentrated", "spread"], default="concentrated")
    ap.add_argument("--grid", type=int, default=24, help="grid resolution (volume)")
    ap.add_argument("--knots", type=int, default=32, help="rvs density knots (volume)")
    ap.add_argument("--samples", type=int, default=4, help="rvs radiance samples (volume)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="time budget and curves in CPU seconds of this process (all threads; robust to other "
                         "processes on a shared machine) or in wall-clock seconds")
    ap.add_argument("--eval-every", type=float, default=2.0)
    ap.add_argument("--eval-spp", type=int, default=16)
    ap.add_argument("--ref-spp", type=int, default=64)
    ap.add_argument("--lr", type=float, help="Adam learning rate of full (default per problem)")
    ap.add_argument("--lr-sparse", type=float, help="Adam learning rate of uniform/adaptive (default per problem)")
    ap.add_argument("--lr-final", type=float, default=1.0,
                    help="learning rate at the end of the budget relative to the start (exponential decay; 1: constant)")
    ap.add_argument("--loss", choices=["l1", "l2"], default="l2")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.05])
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--rebuild-every", type=int, default=10)
    ap.add_argument("--tile", type=int, default=8)
    ap.add_argument("--statistic", choices=["residual", "gradient"], default="residual",
                    help="statistic of the adaptive sampler (gradient: two more primal renders of the batch per step)")
    ap.add_argument("--views", type=int, help="training views (default: 4 texture, 8 volume, 4 SDF)")
    ap.add_argument("--view-choice", choices=["uniform", "adaptive", "all"], default="uniform",
                    help="view of a sparse step; all: each sample draws its own view")
    ap.add_argument("--freeze", action=argparse.BooleanOptionalAction, default=True,
                    help="frozen steps (rvs_mi.optimize.frozen) where the problem's integrator allows them")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["full", "uniform", "adaptive"])
    ap.add_argument("--out", default="out/bench_sampling")
    args = ap.parse_args(argv)
    for k, v in DEFAULTS[args.problem].items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    import rvs_mi
    variant = rvs_mi.init()
    prob = PROBLEMS[args.problem](args)
    true_scene = prob["scene"](prob["truth"])
    refs = [render(true_scene, perspective(o, args.size, prob["fov"]), args.ref_spp, 7 + i)
            for i, o in enumerate(prob["views"])]
    held_ref = np.array(render(true_scene, perspective(prob["heldout"], args.size, prob["fov"]), args.ref_spp, 3))
    del true_scene

    configs = [(m, b) for m in args.methods for b in ([1.0] if m == "full" else args.budgets)]
    # warm-up: compile every kernel shape once so that no run pays for JIT compilation
    warm = argparse.Namespace(**{**vars(args), "seconds": 0.5, "eval_every": 1e9})
    for m, b in configs:
        run_method(m, b, warm, 0, prob, refs, held_ref)
    runs = []
    for seed in args.seeds:
        for m, b in configs:
            r = run_method(m, b, args, seed, prob, refs, held_ref)
            last = r["curve"][-1]
            print(f"{m:9s} N={b:<5g} seed={seed} steps={r['steps']:5d} {r['ms_per_step']:7.1f} ms/step  "
                  f"param err {last['param_err']:.4f}  held-out MSE {last['heldout_mse']:.5f}  "
                  f"{'frozen' if r['frozen'] else 'traced'}", flush=True)
            runs.append(r)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"bench_sampling_{args.problem}.json"), "w") as f:
        json.dump({"args": vars(args), "variant": variant, "problem": prob["name"], "runs": runs}, f, indent=1)

    def group(m, b):
        return [r for r in runs if r["method"] == m and r["budget"] == b]

    def final(g, field):
        return float(np.mean([r["curve"][-1][field] for r in g]))

    traced = sorted({n for r in runs for n in r["notes"]})
    print(f"\n{prob['name']}: {args.size}x{args.size} px, {len(prob['views'])} views "
          f"(view choice {args.view_choice}), steps {'frozen' if args.freeze and not traced else 'traced'}, "
          f"spp {args.spp}, "
          f"{args.loss} loss, lr {args.lr:g} (sparse {args.lr_sparse:g}, final x{args.lr_final:g}), {args.seconds:g} s per run, seeds {args.seeds}, beta {args.beta}, "
          f"K {args.rebuild_every}, tile {args.tile}, statistic {args.statistic} ({variant}, {os.cpu_count()} CPU threads)")
    print(f"Clock: {args.clock} seconds. Times to a level: first evaluation (every {args.eval_every:g} s of "
          "optimization) at or below it, mean over seeds.")
    for field, label in (("param_err", "param RMSE"), ("heldout_mse", "held-out MSE")):
        print(f"\n{label}:")
        print(f"| method | N | ms/step | steps | samples (M) | final {label} (mean ± sd) | t to full's final (s) "
              f"| t to uniform's final (s) |")
        print("|---|---|---|---|---|---|---|---|")
        full_final = final(group("full", 1.0), field) if "full" in args.methods else None
        for m, b in configs:
            g = group(m, b)
            fin = [r["curve"][-1][field] for r in g]
            uni = group("uniform", b) if m != "full" else []
            t_full = _fmt_time([time_to_reach(r["curve"], full_final, field) for r in g]) if full_final is not None else "-"
            t_uni = _fmt_time([time_to_reach(r["curve"], final(uni, field), field) for r in g]) if uni else "-"
            print(f"| {m} | {b:g} | {np.mean([r['ms_per_step'] for r in g]):.1f} | {np.mean([r['steps'] for r in g]):.0f} | "
                  f"{np.mean([r['curve'][-1]['samples'] for r in g]) / 1e6:.3f} | "
                  f"{np.mean(fin):.4g} ± {np.std(fin):.2g} | {t_full} | {t_uni} |")
        # the issue's goal, as ratios
        if "adaptive" in args.methods:
            for b in args.budgets:
                ad = group("adaptive", b)
                parts = []
                if "uniform" in args.methods:
                    t = np.mean([time_to_reach(r["curve"], final(group("uniform", b), field), field) for r in ad])
                    parts.append(f"t_adaptive(uniform's final) / uniform's time = {t / args.seconds:.2f} (goal ≤ 0.5)")
                if full_final is not None:
                    t = np.mean([time_to_reach(r["curve"], full_final, field) for r in ad])
                    parts.append(f"t_adaptive(full's final) / full's time = {t / args.seconds:.2f} (goal ≤ 0.33)")
                print(f"  N={b:g}: " + "; ".join(parts))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
        for (m, b), colour in zip(configs, plt.cm.tab10.colors):
            for k, r in enumerate(group(m, b)):
                c = r["curve"]
                lab = f"{m} {b:g}" if k == 0 else None
                for ax, x, f in ((axes[0], "time_s", "param_err"), (axes[1], "samples", "param_err"),
                                 (axes[2], "time_s", "heldout_mse"), (axes[3], "samples", "heldout_mse")):
                    scale = 1e6 if x == "samples" else 1.0
                    ax.semilogy([p[x] / scale for p in c], [p[f] for p in c], color=colour, label=lab)
        for ax, xl, yl in zip(axes, ["wall time (s)", "rendered samples (M)"] * 2,
                              ["param RMSE"] * 2 + ["held-out image MSE"] * 2):
            ax.set_xlabel(xl.replace("wall", args.clock)), ax.set_ylabel(yl)
        axes[0].legend(fontsize=8)
        fig.suptitle(prob["name"], fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, f"bench_sampling_{args.problem}.png"), dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
