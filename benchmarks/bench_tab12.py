"""Morozov et al. 2024, Tab. 1–2 in spirit: one volume reconstruction, three estimators.

The volume example (``scenes/configs/volume_rvs.toml``: density + RGB radiance
grids, 16³ → 32³, fitted to 16 views of ``scenes/blocks.xml`` rendered by
Mitsuba's path tracer, 4 held-out views) trained with the same grids, steps,
optimizer, loss and pixel sampler by

- ``rvs`` with 8 and with 32 radiance samples per ray (``--rvs-knots`` density knots),
- ``volquad`` with 128 knots (radiance at every knot: the NeRF quadrature),

each in its own process through ``rvs_mi.optimize.run_optimization``.
Prints held-out PSNR/SSIM (before → after), time per step (wall clock as
logged by the loop, and CPU time of the process over the training steps: all
threads, barely affected by other processes on a shared machine) and peak memory
(Dr.Jit's LLVM allocation watermark over the training steps, and the
process's peak RSS, which includes rendering the references).

    .venv/bin/python benchmarks/bench_tab12.py                 # ≈ 4 min on 2 cores
    .venv/bin/python benchmarks/bench_tab12.py --steps 600 --res 128 --seeds 0 1 2
    .venv/bin/python benchmarks/bench_tab12.py --neural --steps 100 --res 64      # ≈ 15 min

``--set section.key=value`` passes more overrides to every run (as
``rvs-mi optimize --set``), e.g. ``--set sampler.name=\"adaptive\"``.
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

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "scenes", "configs", "volume_rvs.toml")


#: ``--neural``: the fields become a hash grid + MLP (``rvs_mi.volume.attach_neural_fields``, radiance
#: head 2 × 32 hidden units), trained with Adam at lr 0.01 without grid upsampling, clamping or TV.
NEURAL = ["scene.neural={hidden=32}",
          'optimize.params=["volume.density.weights", "volume.density.encoding", "volume.radiance.weights"]',
          "optimize.clamp={}", "upsample.initial_resolution=0", "upsample.at_steps=[]", "regularizers.tv=0.0",
          "optimize.lr=0.01"]


def estimators(args):
    k = args.rvs_knots
    return {
        "rvs 8": {"integrator": "rvs", "knots": str(k), "samples": "8"},
        "rvs 32": {"integrator": "rvs", "knots": str(k), "samples": "32"},
        f"volquad {args.quad_knots}": {"integrator": "volquad", "knots": str(args.quad_knots), "samples": ""},
    }


def _scene_file(integrator: str) -> str:
    """scenes/volume_fit.xml, for volquad without its ``samples`` property (volquad rejects it:
    "unreferenced property"), written to a temporary file with absolute grid paths."""
    src = os.path.join(HERE, "..", "scenes", "volume_fit.xml")
    if integrator != "volquad":
        return os.path.abspath(src)
    with open(src) as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if 'name="samples"' not in ln]
    text = "\n".join(lines).replace('value="volume/', 'value="' + os.path.abspath(os.path.join(HERE, "..", "scenes", "volume")) + "/")
    fd, path = tempfile.mkstemp(suffix=".xml", prefix="volume_fit_volquad_")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _config(overrides, sampler: str):
    """The shipped config with ``overrides``, less the [sampler] keys ``sampler`` does not read."""
    import tomllib

    from rvs_mi.optimize.config import apply_override, validate
    from rvs_mi.optimize.config_rules import ADAPTIVE_ONLY
    with open(CONFIG, "rb") as f:
        raw = tomllib.load(f)
    for item in overrides:
        apply_override(raw, item)
    unused = (("budget",) if sampler == "full" else ()) + (ADAPTIVE_ONLY + ("tile",) if sampler != "adaptive" else ())
    for k in unused:
        raw.get("sampler", {}).pop(k, None)
    return validate(raw, os.path.dirname(os.path.abspath(CONFIG)))


def worker(name: str, seed: int, args) -> dict:
    import drjit as dr

    import rvs_mi
    from rvs_mi.optimize.loop import run_optimization

    rvs_mi.init(variant())
    defines = {**estimators(args)[name], "activation": "softplus"}
    scene_file = _scene_file(defines["integrator"])
    if defines["integrator"] == "volquad":
        del defines["samples"]
    defines_toml = "{" + ", ".join(f'{k} = "{v}"' for k, v in defines.items()) + "}"
    half = args.steps // 2
    overrides = [f"scene.defines={defines_toml}", f'scene.file="{scene_file}"', f"optimize.steps={args.steps}", f"optimize.seed={seed}",
                 f"references.res={args.res}", f"upsample.at_steps=[{half}]",
                 f'sampler.name="{args.sampler}"', "output.checkpoint_every=0",
                 f"output.eval_spp={args.eval_spp}"] + list(args.set or [])
    config = _config(overrides, args.sampler)
    out = tempfile.mkdtemp(prefix="bench_tab12_")

    # Memory of the training steps only: reset the watermark after the initial held-out
    # evaluation (references are rendered before it) and read it before the final one.
    from rvs_mi.optimize import loop
    evaluate, calls, marks = loop.evaluate, [], {}

    def watched_evaluate(*a, **kw):
        if calls:
            dr.sync_thread()
            marks["train"] = dr.detail.malloc_watermark(dr.JitBackend.LLVM)
            marks["cpu"] = time.process_time() - marks["cpu0"]
        result = evaluate(*a, **kw)
        if not calls:
            dr.sync_thread()
            dr.flush_malloc_cache()      # else the watermark counts Dr.Jit's cached blocks
            dr.detail.malloc_clear_statistics()
            marks["cpu0"] = time.process_time()
        calls.append(1)
        return result
    loop.evaluate = watched_evaluate
    summary = run_optimization(config, out, progress=False)
    return {"name": name, "seed": seed, "psnr0": summary["psnr_initial"], "psnr": summary["psnr_final"],
            "ssim0": summary["ssim_initial"], "ssim": summary["ssim_final"],
            "step_s": summary["time_s"] / max(summary["steps"], 1), "time_s": summary["time_s"],
            "step_cpu_s": marks["cpu"] / max(summary["steps"], 1),
            "pixels": summary["pixels_rendered"],
            "jit_peak_mb": marks.get("train", float("nan")) / 2 ** 20,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "out": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="optimization steps (grids upsampled at half)")
    ap.add_argument("--res", type=int, default=64, help="image resolution of the views")
    ap.add_argument("--rvs-knots", type=int, default=128, help="density knots of rvs")
    ap.add_argument("--quad-knots", type=int, default=128, help="knots of volquad")
    ap.add_argument("--sampler", default="full", help="pixel sampler of every run (full | uniform | adaptive)")
    ap.add_argument("--eval-spp", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", action="append", help="more config overrides section.key=value")
    ap.add_argument("--neural", action="store_true", help="hash grid + MLP fields instead of grids (NEURAL)")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the short runs that compile every kernel before the measured ones")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.seed, args)), flush=True)
        return 0

    common = [f"--steps={args.steps}", f"--res={args.res}", f"--rvs-knots={args.rvs_knots}",
              f"--quad-knots={args.quad_knots}", f"--sampler={args.sampler}", f"--eval-spp={args.eval_spp}"]
    for s in (NEURAL if args.neural else []) + (args.set or []):
        common.append(f"--set={s}")
    results = []
    if args.warmup:     # compile every kernel once (Dr.Jit's on-disk cache) so that no run pays for it
        warm = [c for c in common if not c.startswith("--steps=")] + ["--steps=4"]
        for name in estimators(args):
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name] + warm,
                           capture_output=True, text=True)
    for seed in args.seeds:
        for name in estimators(args):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, f"--seed={seed}"]
                                 + common, capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                print(f"{name}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
                return 1
            results.append(json.loads(line[0][7:]))
            r = results[-1]
            print(f"  {name} seed {seed}: PSNR {r['psnr0']:.2f} -> {r['psnr']:.2f} dB, {r['step_s']:.3f} s/step "
                  f"({time.perf_counter() - t0:.0f} s with setup)", file=sys.stderr, flush=True)

    import numpy as np
    names = list(estimators(args))
    ref = [r for r in results if r["name"].startswith("volquad")]
    ref_step = np.mean([r["step_s"] for r in ref])
    ref_cpu = np.mean([r["step_cpu_s"] for r in ref])
    fields = ("hash grid + MLP fields (--neural)" if args.neural
              else f"density + RGB grids 16^3 -> 32^3 at step {args.steps // 2}")
    print(f"\nVolume reconstruction of scenes/blocks.xml (volume_rvs.toml: {fields}), {args.res}x{args.res} views, {args.steps} steps, sampler {args.sampler}, "
          f"seeds {args.seeds}; rvs with {args.rvs_knots} density knots; LLVM, {os.cpu_count()} CPU threads; "
          f"held-out: 4 test views at {args.eval_spp} spp")
    print("| estimator | held-out PSNR (dB) | held-out SSIM | step (s) | step vs volquad | step CPU (s) | CPU vs volquad "
          "| Dr.Jit peak, training (MB) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        g = [r for r in results if r["name"] == name]
        m = lambda key: np.mean([r[key] for r in g])     # noqa: E731
        print(f"| {name} | {m('psnr0'):.2f} → {m('psnr'):.2f} | {m('ssim0'):.3f} → {m('ssim'):.3f} | {m('step_s'):.3f} | "
              f"x{ref_step / m('step_s'):.2f} faster | {m('step_cpu_s'):.3f} | x{ref_cpu / m('step_cpu_s'):.2f} less | "
              f"{m('jit_peak_mb'):.0f} | {m('rss_mb'):.0f} |")
    write_json(args.json, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
