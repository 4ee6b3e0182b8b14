"""Pixel samplers on an inverse problem: full images vs uniform vs adaptive sparse pixels.

Problem (1) of issue 6: recover an albedo texture with ``prb`` from several
views of a textured plane (direct lighting under a constant sky plus a point
light). Each method runs for the same wall-clock budget; every few seconds
(clock paused) it records the texture RMSE against the truth and the image
MSE of a held-out view. Prints a table and writes ``bench_sampling.json`` and
a plot to ``--out``.

    .venv/bin/python benchmarks/bench_sampling.py --seconds 30 --seeds 0 1 2

``--pattern concentrated``: the truth is grey except for a detailed patch
(≈ 10 % of the texture), so the error is concentrated; ``spread``: random
texture everywhere (adaptive should gain little).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


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


def make_scene(tex: np.ndarray, size: int, views: list, spp: int = 4):
    import mitsuba as mi
    sensors = {}
    for i, (ox, oy) in enumerate(views):
        sensors[f"sensor{i}"] = {
            "type": "perspective", "fov": 45,
            "to_world": mi.ScalarTransform4f().look_at(origin=[ox, oy, 2.6], target=[0, 0, 0], up=[0, 1, 0]),
            "film": {"type": "hdrfilm", "width": size, "height": size, "pixel_format": "rgb",
                     "rfilter": {"type": "box"}},
            "sampler": {"type": "independent", "sample_count": spp}}
    return mi.load_dict({
        "type": "scene", "integrator": {"type": "prb", "max_depth": 2},
        "plane": {"type": "rectangle", "bsdf": {"type": "diffuse", "reflectance": {
            "type": "bitmap", "data": mi.TensorXf(tex), "raw": True, "filter_type": "bilinear"}}},
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.6}},
        "light": {"type": "point", "position": [1.0, 1.5, 2.0], "intensity": {"type": "rgb", "value": 4.0}},
        **sensors})


TRAIN_VIEWS = [(-0.6, -0.4), (0.6, -0.4), (-0.5, 0.5), (0.5, 0.5)]
HELDOUT_VIEW = [(0.0, 0.1)]
KEY = "plane.bsdf.reflectance.data"


def run_method(method, budget, args, seed, truth, refs, held_ref):
    import drjit as dr
    import mitsuba as mi
    from rvs_mi import sampling
    from rvs_mi.optimize.losses import image_loss

    res = truth.shape[0]
    scene = make_scene(np.full_like(truth, 0.5), args.size, TRAIN_VIEWS)
    sensors = list(scene.sensors())
    held = make_scene(np.full_like(truth, 0.5), args.size, HELDOUT_VIEW)
    params = mi.traverse(scene)
    params.keep([KEY])
    held_params = mi.traverse(held)
    opt = mi.ad.Adam(lr=args.lr)
    opt[KEY] = params[KEY]
    params.update(opt)
    sampler = None
    if method != "full":
        sampler = sampling.make_sampler(method, image_size=(args.size, args.size), n_views=len(sensors),
                                        budget=budget, beta=args.beta, rebuild_every=args.rebuild_every,
                                        tile=args.tile, seed=seed)
    curve = []
    samples = 0
    clock = 0.0

    def evaluate(step):
        with dr.suspend_grad():
            held_params[KEY] = params[KEY]
            held_params.update()
            img = mi.render(held, spp=args.eval_spp, seed=12345)
        tex = np.array(params[KEY])
        curve.append({"step": step, "time_s": clock, "samples": samples,
                      "param_rmse": float(np.sqrt(np.mean((tex - truth) ** 2))),
                      "heldout_mse": float(np.mean((np.array(img) - held_ref) ** 2))})

    evaluate(0)
    next_eval = args.eval_every
    step = 0
    rng = np.random.default_rng([seed, 99])
    while clock < args.seconds:
        t0 = time.perf_counter()
        s = (seed * 100003 + 2 * step) & 0x7FFFFFFF
        if sampler is None:
            view = int(rng.integers(len(sensors)))
            img = mi.render(scene, params, sensor=sensors[view], spp=args.spp, seed=s, seed_grad=s + 1)
            loss = image_loss(img, refs[view], "l2")
            n = args.size * args.size
        else:
            batch = sampler.draw(step)
            values = sampling.render_pixels(scene, params, sensors, batch, spp=args.spp, seed=s)
            ref = sampling.gather_reference(refs, batch)
            loss = sampling.weighted_loss(values, ref, batch, kind="l2")
            sampler.observe(batch, values, ref)
            n = batch.size
        dr.backward(loss)
        opt.step()
        opt[KEY] = dr.clip(opt[KEY], 0.0, 1.0)
        params.update(opt)
        dr.eval(params[KEY])
        dr.sync_thread()       # the LLVM backend runs kernels asynchronously: wait before reading the clock
        clock += time.perf_counter() - t0
        samples += n * args.spp
        step += 1
        if clock >= next_eval:
            evaluate(step)
            next_eval += args.eval_every
    evaluate(step)
    return {"method": method, "budget": budget, "seed": seed, "steps": step, "curve": curve,
            "ms_per_step": 1e3 * clock / max(step, 1)}


def time_to_reach(curve, level, field="param_rmse"):
    for point in curve:
        if point[field] <= level:
            return point["time_s"]
    return float("inf")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=96, help="image width = height")
    ap.add_argument("--tex", type=int, default=32, help="texture resolution")
    ap.add_argument("--pattern", choices=["concentrated", "spread"], default="concentrated")
    ap.add_argument("--seconds", type=float, default=30.0, help="optimization wall time per run")
    ap.add_argument("--eval-every", type=float, default=3.0)
    ap.add_argument("--eval-spp", type=int, default=32)
    ap.add_argument("--spp", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.10])
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--rebuild-every", type=int, default=10)
    ap.add_argument("--tile", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["full", "uniform", "adaptive"])
    ap.add_argument("--out", default="out/bench_sampling")
    args = ap.parse_args(argv)

    import mitsuba as mi
    import rvs_mi
    variant = rvs_mi.init()
    truth = truth_texture(args.pattern, args.tex)
    ref_scene = make_scene(truth, args.size, TRAIN_VIEWS)
    refs = [mi.render(ref_scene, sensor=i, spp=256, seed=7 + i) for i in range(len(TRAIN_VIEWS))]
    held_ref = np.array(mi.render(make_scene(truth, args.size, HELDOUT_VIEW), spp=256, seed=3))

    runs = []
    # warm-up: compile every kernel shape once so that no run pays for JIT compilation
    warm = argparse.Namespace(**{**vars(args), "seconds": 0.5, "eval_every": 1e9})
    for method in args.methods:
        for budget in ([1.0] if method == "full" else args.budgets):
            run_method(method, budget, warm, 0, truth, refs, held_ref)
    for seed in args.seeds:
        for method in args.methods:
            for budget in ([1.0] if method == "full" else args.budgets):
                r = run_method(method, budget, args, seed, truth, refs, held_ref)
                last = r["curve"][-1]
                print(f"{method:9s} N={budget:<5g} seed={seed} steps={r['steps']:5d} "
                      f"{r['ms_per_step']:6.1f} ms/step  param RMSE {last['param_rmse']:.4f}  "
                      f"held-out MSE {last['heldout_mse']:.5f}", flush=True)
                runs.append(r)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_sampling.json"), "w") as f:
        json.dump({"args": vars(args), "variant": variant, "runs": runs}, f, indent=1)

    # table: mean over seeds of final errors; times to reach reference levels
    def group(method, budget):
        return [r for r in runs if r["method"] == method and r["budget"] == budget]

    configs = [(m, b) for m in args.methods for b in ([1.0] if m == "full" else args.budgets)]
    full_final = np.mean([r["curve"][-1]["param_rmse"] for r in group("full", 1.0)]) if "full" in args.methods else None
    print(f"\n{args.pattern} texture, {args.size}x{args.size} px, {len(TRAIN_VIEWS)} views, spp {args.spp}, "
          f"{args.seconds:g} s per run, seeds {args.seeds}, beta {args.beta}, K {args.rebuild_every}, "
          f"tile {args.tile} ({variant})")
    print("| method | N | ms/step | steps | samples (M) | param RMSE | held-out MSE | t to full's final RMSE (s) | "
          "t to uniform's final RMSE (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, b in configs:
        g = group(m, b)
        fin = [r["curve"][-1] for r in g]
        uni = group("uniform", b) if m != "full" else []
        uni_final = np.mean([r["curve"][-1]["param_rmse"] for r in uni]) if uni else None
        t_full = np.mean([time_to_reach(r["curve"], full_final) for r in g]) if full_final is not None else float("nan")
        t_uni = np.mean([time_to_reach(r["curve"], uni_final) for r in g]) if uni_final is not None else float("nan")
        print(f"| {m} | {b:g} | {np.mean([r['ms_per_step'] for r in g]):.1f} | {np.mean([r['steps'] for r in g]):.0f} | "
              f"{np.mean([f['samples'] for f in fin]) / 1e6:.2f} | "
              f"{np.mean([f['param_rmse'] for f in fin]):.4f} ± {np.std([f['param_rmse'] for f in fin]):.4f} | "
              f"{np.mean([f['heldout_mse'] for f in fin]):.5f} | {t_full:.1f} | {t_uni:.1f} |")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for (m, b), colour in zip(configs, plt.cm.tab10.colors):
            for k, r in enumerate(group(m, b)):
                c = r["curve"]
                lab = f"{m} {b:g}" if k == 0 else None
                axes[0].semilogy([p["time_s"] for p in c], [p["param_rmse"] for p in c], color=colour, label=lab)
                axes[1].semilogy([p["samples"] / 1e6 for p in c], [p["param_rmse"] for p in c], color=colour)
                axes[2].semilogy([p["time_s"] for p in c], [p["heldout_mse"] for p in c], color=colour)
        axes[0].set_xlabel("wall time (s)"), axes[0].set_ylabel("texture RMSE")
        axes[1].set_xlabel("rendered samples (M)"), axes[1].set_ylabel("texture RMSE")
        axes[2].set_xlabel("wall time (s)"), axes[2].set_ylabel("held-out image MSE")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, f"bench_sampling_{args.pattern}.png"), dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
