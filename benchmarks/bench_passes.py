"""Peak memory and time of renders in passes (``pass_rays``) against one pass, by resolution and spp.

Each case runs in a fresh process (so its peak resident memory, ``VmHWM``, is its own):
``scenes/volume_blob.xml`` rendered by ``rvs`` (128 knots, 8 samples) and
``scenes/sdf_sphere_persp.xml`` by ``sdf_reparam``, either as a primal image
(``mi.render``) or as a gradient (``mi.render`` with the density grid / the sphere
radius attached, then ``dr.backward`` of the image mean: forward primal + reverse pass),
with ``pass_rays`` = 2^18 (the volume integrators' default; the SDF integrators' is 2^22) and
with ``pass_rays = 0`` (one pass). Columns: peak RSS in MB (of the whole process, kernel
compilation included), Dr.Jit's allocation peak over the timed render (device memory on
CUDA), wall seconds of the second of two identical renders (the first compiles the kernels),
passes. One-pass cases above ``--max-one-pass`` samples are skipped (their
memory grows past the machine's).

    .venv/bin/python benchmarks/bench_passes.py                # ≈ 8 min on 2 cores
    .venv/bin/python benchmarks/bench_passes.py --quick        # the smaller half
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import variant

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SCENES = {"rvs": ("volume_blob.xml", "volume.density.data"),
          "sdf_reparam": ("sdf_sphere_persp.xml", "integrator.sdf.radius")}


def run_case(integrator: str, res: int, spp: int, mode: str, pass_rays: int) -> dict:
    """One measurement, in this process (called through ``--case``)."""
    import drjit as dr
    import mitsuba as mi

    import rvs_mi
    from rvs_mi import scenes
    from rvs_mi.passes import plan
    from rvs_mi.scene import load_scene
    rvs_mi.init(variant())
    path, key = SCENES[integrator]

    def load(r):
        scene = load_scene(scenes.path(path), {"res": str(r), "spp": str(spp)})
        scene.integrator().pass_rays = pass_rays
        return scene

    def once(scene):
        if mode == "render":
            return dr.eval(mi.render(scene, spp=spp, seed=1))
        params = mi.traverse(scene)
        dr.enable_grad(params[key])
        params.update()
        image = mi.render(scene, params, spp=spp, seed=1, seed_grad=2)
        dr.backward(dr.mean(image, axis=None))
        dr.eval(dr.grad(params[key]))

    scene = load(res)
    once(scene)                      # compiles this size's kernels
    dr.flush_malloc_cache()
    dr.detail.malloc_clear_statistics()
    dr.sync_thread()
    t0 = time.perf_counter()
    once(scene)
    dr.sync_thread()
    wall = time.perf_counter() - t0
    with open("/proc/self/status") as f:
        peak = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024
    jit_peak = dr.detail.malloc_watermark(dr.backend_v(mi.Float)) / 2 ** 20
    bands = plan(res, res, spp, pass_rays)
    return {"peak_rss_mb": peak, "jit_peak_mb": jit_peak, "wall_s": wall,
            "passes": sum(spp // b[2] for b in bands)}


def measure(integrator, res, spp, mode, pass_rays) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", integrator, str(res), str(spp), mode, str(pass_rays)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def cases(quick: bool, integrators=tuple(SCENES)):
    res_series = [128, 256, 512] if quick else [128, 256, 512, 1024]
    spp_series = [1, 4, 16] if quick else [1, 4, 16, 64]
    for integrator in integrators:
        for mode in ("render", "grad"):
            for res in res_series:
                yield integrator, res, 1, mode
            for spp in spp_series[1:]:
                if integrator == "sdf_reparam" and spp > 16:
                    continue
                yield integrator, 256, spp, mode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="smaller sizes only")
    ap.add_argument("--max-one-pass", type=int, default=1 << 22, help="largest one-pass case, in samples")
    ap.add_argument("--integrators", nargs="+", choices=sorted(SCENES), default=list(SCENES),
                    help="the integrators to measure")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.case:
        integrator, res, spp, mode, pass_rays = args.case
        print(json.dumps(run_case(integrator, int(res), int(spp), mode, int(pass_rays))))
        return 0
    from rvs_mi.passes import DEFAULT_PASS_RAYS
    rows = []
    print("| integrator | mode | res | spp | samples | passes | peak RSS (MB), passes | one pass | "
          "Dr.Jit peak (MB), passes | one pass | time (s), passes | one pass |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for integrator, res, spp, mode in cases(args.quick, args.integrators):
        split = measure(integrator, res, spp, mode, DEFAULT_PASS_RAYS)
        whole = (measure(integrator, res, spp, mode, 0) if res * res * spp <= args.max_one_pass
                 else {"error": "skipped"})
        rows.append({"integrator": integrator, "mode": mode, "res": res, "spp": spp, "passes": split,
                     "one_pass": whole})

        def cell(r, k, fmt):
            return fmt.format(r[k]) if k in r else r.get("error", "?")
        print(f"| {integrator} | {mode} | {res}² | {spp} | {res * res * spp} | {split.get('passes', '?')} | "
              f"{cell(split, 'peak_rss_mb', '{:.0f}')} | {cell(whole, 'peak_rss_mb', '{:.0f}')} | "
              f"{cell(split, 'jit_peak_mb', '{:.0f}')} | {cell(whole, 'jit_peak_mb', '{:.0f}')} | "
              f"{cell(split, 'wall_s', '{:.2f}')} | {cell(whole, 'wall_s', '{:.2f}')} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
