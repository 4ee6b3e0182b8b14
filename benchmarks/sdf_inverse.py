"""Inverse rendering with the SDF integrators: recover a sphere and a torus from a few views.

Targets are rendered with the true parameters; the optimization starts from
offset values and fits all views (no masks: the image loss only) with
Adam (L2 image loss by default). The same start, views, seeds and learning rates are used for
``sdf_reparam`` (boundary warp) and ``sdf_naive`` (no boundary term).

* sphere: center (3) and radius; diffuse, sun + sky;
* torus: major and minor radius (center fixed); diffuse, 3-D noise albedo.

Prints a table of final relative parameter errors and writes the curves
(parameter error and loss per iteration) to ``--output`` (PNG + JSON).

    python benchmarks/sdf_inverse.py [--iters 100] [--views 4] [--res 32] [-o sdf_inverse]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from common import variant

TRUE = {"sphere": {"center": [0.12, -0.08, 0.05], "radius": 0.5},
        "torus": {"radius": 0.8, "minor_radius": 0.3}}
START = {"sphere": {"center": [-0.1, 0.1, -0.1], "radius": 0.38},
         "torus": {"radius": 0.65, "minor_radius": 0.22}}


def views(n, dist=3.2):
    """Camera origins on a ring at two heights, looking at the origin."""
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n
        h = 0.9 if i % 2 else -0.6
        v = np.array([np.cos(a), np.sin(a) * 0.9, h])
        out.append((dist * v / np.linalg.norm(v)).tolist())
    return out


def build(kind, integrator, values, n_views, res, albedo_file):
    import mitsuba as mi
    integ = {"type": integrator, "shading": "diffuse", "max_steps": 48}
    if kind == "sphere":
        integ.update({"sdf_shape": "sphere", "sdf_center": values["center"], "sdf_radius": values["radius"],
                      "albedo": {"type": "rgb", "value": [0.8, 0.55, 0.3]}})
    else:
        integ.update({"sdf_shape": "torus", "sdf_radius": values["radius"],
                      "sdf_minor_radius": values["minor_radius"],
                      "albedo": {"type": "gridvolume", "filename": albedo_file, "use_grid_bbox": False,
                                 "to_world": mi.ScalarTransform4f().translate([-1.2] * 3).scale(2.4)}})
    d = {"type": "scene", "integrator": integ,
         "sun": {"type": "directional", "direction": [-0.4, -0.5, -1.0],
                 "irradiance": {"type": "rgb", "value": 2.5}},
         "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.25}}}
    for i, o in enumerate(views(n_views)):
        d[f"view{i}"] = {
            "type": "perspective", "fov": 40,
            "to_world": mi.ScalarTransform4f().look_at(origin=o, target=[0, 0, 0], up=[0, 0, 1]),
            "sampler": {"type": "independent", "sample_count": 4},
            "film": {"type": "hdrfilm", "width": res, "height": res, "rfilter": {"type": "box"}}}
    return mi.load_dict(d)


def rel_error(kind, values):
    t = TRUE[kind]
    if kind == "sphere":
        c = np.linalg.norm(np.subtract(values["center"], t["center"])) / t["radius"]
        r = abs(values["radius"] - t["radius"]) / t["radius"]
        return {"center (rel. to radius)": float(c), "radius": float(r), "max": float(max(c, r))}
    a = abs(values["radius"] - t["radius"]) / t["radius"]
    b = abs(values["minor_radius"] - t["minor_radius"]) / t["minor_radius"]
    return {"radius": float(a), "minor_radius": float(b), "max": float(max(a, b))}


def fit(kind, integrator, args, albedo_file, targets):
    import drjit as dr
    import mitsuba as mi
    scene = build(kind, integrator, START[kind], args.views, args.res, albedo_file)
    params = mi.traverse(scene)
    keys = {"center": "integrator.sdf.center", "radius": "integrator.sdf.radius",
            "minor_radius": "integrator.sdf.minor_radius"}
    names = list(START[kind])
    opt = mi.ad.Adam(lr=args.lr)
    for n in names:
        opt[keys[n]] = params[keys[n]]
    params.update(opt)
    curve = []
    t0 = time.perf_counter()
    for it in range(args.iters):
        total = 0.0
        for v in range(args.views):
            img = mi.render(scene, params, sensor=v, spp=args.spp, seed=2 * (it * args.views + v) + 1,
                            seed_grad=2 * (it * args.views + v) + 2)
            diff = img - targets[v]
            # L2: with separate primal/gradient seeds its gradient is unbiased; an L1 loss of
            # a noisy render pulls towards the per-pixel median (a biased fit at low spp)
            loss = dr.mean(diff * diff if args.loss == "l2" else dr.abs(diff), axis=None) / args.views
            dr.backward(loss)
            total += float(loss.array[0])
        opt.set_learning_rate(args.lr * 0.1 ** (it / max(args.iters - 1, 1)))   # decays 10x
        opt.step()
        # keep the shape valid: radii positive, minor < major
        if kind == "torus":
            R = dr.clip(opt[keys["radius"]], 0.1, 2.0)
            opt[keys["radius"]] = R
            opt[keys["minor_radius"]] = dr.clip(opt[keys["minor_radius"]], 0.02, 0.9 * R)
        else:
            opt[keys["radius"]] = dr.clip(opt[keys["radius"]], 0.05, 2.0)
        params.update(opt)
        values = {n: (np.array(params[keys[n]]).ravel().tolist() if n == "center"
                      else float(np.array(params[keys[n]]).ravel()[0])) for n in names}
        err = rel_error(kind, values)
        curve.append({"iter": it, "loss": total, **{f"err_{k}": v for k, v in err.items()}, "values": values})
    return {"kind": kind, "integrator": integrator, "curve": curve, "final": curve[-1],
            "seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--spp", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02, help="initial Adam rate (decays 10x)")
    ap.add_argument("--kinds", default="sphere,torus")
    ap.add_argument("--loss", choices=["l2", "l1"], default="l2")
    ap.add_argument("-o", "--output", default="sdf_inverse")
    args = ap.parse_args()
    if not 1 <= args.views <= 16:
        print("sdf_inverse: --views must be in 1..16", file=sys.stderr)
        return 2
    import drjit as dr
    import mitsuba as mi
    import rvs_mi
    rvs_mi.init(variant())
    from rvs_mi.figures.noise import write_noise_albedo
    os.makedirs(args.output, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        alb = write_noise_albedo(os.path.join(tmp, "albedo.vol"))
        for kind in args.kinds.split(","):
            ref = build(kind, "sdf_reparam", TRUE[kind], args.views, args.res, alb)
            with dr.suspend_grad():
                targets = [mi.render(ref, sensor=v, spp=256, seed=10_000 + v) for v in range(args.views)]
            for integrator in ("sdf_reparam", "sdf_naive"):
                r = fit(kind, integrator, args, alb, targets)
                f = r["final"]
                print(f"{kind:6s} {integrator:12s}: max rel. parameter error {f['err_max']:.4f} "
                      f"(start {rel_error(kind, START[kind])['max']:.3f}), loss {f['loss']:.5f}, "
                      f"{r['seconds']:.0f} s, values {f['values']}", flush=True)
                results.append(r)

    print(f"\n{args.views} views, {args.res}x{args.res}, spp {args.spp}, {args.iters} Adam steps, lr {args.lr}, "
          f"{args.loss.upper()} loss")
    print(f"{'scene':7s} {'integrator':12s} {'start err':>9s} {'final err':>9s}  per parameter")
    for r in results:
        f = r["final"]
        per = ", ".join(f"{k[4:]} {v:.4f}" for k, v in f.items() if k.startswith("err_") and k != "err_max")
        print(f"{r['kind']:7s} {r['integrator']:12s} {rel_error(r['kind'], START[r['kind']])['max']:9.4f} "
              f"{f['err_max']:9.4f}  {per}")
    with open(os.path.join(args.output, "sdf_inverse.json"), "w") as fh:
        json.dump({"args": vars(args), "true": TRUE, "start": START, "results": results}, fh, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = args.kinds.split(",")
    fig, axes = plt.subplots(2, len(kinds), figsize=(5 * len(kinds), 7), squeeze=False)
    for j, kind in enumerate(kinds):
        for r in (x for x in results if x["kind"] == kind):
            its = [c["iter"] for c in r["curve"]]
            axes[0, j].semilogy(its, [c["err_max"] for c in r["curve"]], label=r["integrator"])
            axes[1, j].semilogy(its, [c["loss"] for c in r["curve"]], label=r["integrator"])
        axes[0, j].axhline(0.01, color="gray", ls=":", lw=1)
        axes[0, j].set_title(f"{kind}: max relative parameter error")
        axes[1, j].set_title(f"{kind}: {args.loss.upper()} image loss")
        axes[1, j].set_xlabel("iteration")
        for ax in axes[:, j]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "sdf_inverse.png"), dpi=100)
    print(f"curves -> {os.path.join(args.output, 'sdf_inverse.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
