"""rvs-mi demo: the README's main job.

1. renders a small multi-view dataset of ``scenes/blocks.xml`` (NeRF-synthetic layout);
2. reconstructs it as a volume (density + radiance grids) with the ``rvs`` integrator and
   the adaptive pixel sampler;
3. recovers an SDF shape (sphere centre and radius) from images with ``sdf_reparam``;
then prints a summary table. Everything goes to ``./out/demo``.
"""
from __future__ import annotations

import json
import os
import time

NAME = "demo"
HELP = "reconstruct a volume (rvs + adaptive sampler) and an SDF shape (sdf_reparam) from images"

def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", default=os.path.join("out", "demo"), metavar="DIR",
                        help="output folder (default ./out/demo)")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke test, ~1 minute)")


def run(args) -> int:
    import tomllib

    from tqdm import tqdm

    from .. import init, scenes
    from ..optimize.config import load_config, validate
    from ..optimize.config_rules import SCENE_REFERENCE_KEYS
    from ..optimize.dataset import render_dataset
    from ..optimize.loop import run_optimization
    from ..scene import check_output_dir, load_scene

    check_output_dir(args.output)
    init()
    out = args.output
    os.makedirs(out, exist_ok=True)
    rows = []
    start = time.perf_counter()

    # 1. Dataset.
    t0 = time.perf_counter()
    data_dir = os.path.join(out, "dataset")
    views, test_views = 16, 4
    bar = tqdm(total=views + test_views, desc="demo: dataset", unit="view")
    render_dataset(load_scene(scenes.path("blocks.xml")), data_dir, views, 32, test_views, spp=128,
                   rig="hemisphere", seed=0, progress=lambda *a: bar.update(1))
    bar.close()
    print(f"demo: dataset of {views}+{test_views} views at 32x32 in {time.perf_counter() - t0:.1f} s "
          f"-> {data_dir}")

    # 2. Volume reconstruction with rvs and the adaptive sampler.
    steps = 60 if args.quick else 300
    path = scenes.path("configs/volume_rvs.toml")
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    # The dataset replaces the reference scene and its camera rig.
    raw["references"] = {k: v for k, v in raw["references"].items()
                         if k != "scene" and k not in SCENE_REFERENCE_KEYS}
    raw["references"]["dataset"] = os.path.abspath(data_dir)
    raw["optimize"]["steps"] = steps
    raw["upsample"]["at_steps"] = [steps // 2]
    config = validate(raw, os.path.dirname(path))
    summary = run_optimization(config, os.path.join(out, "volume"))
    rows.append(("volume (rvs, adaptive)", summary, "held-out PSNR"))

    # 3. SDF shape recovery with sdf_reparam.
    config = load_config(scenes.path("configs/sdf_sphere.toml"), ["optimize.steps=40"] if args.quick else [])
    summary = run_optimization(config, os.path.join(out, "sdf"))
    rows.append(("sdf sphere (sdf_reparam)", summary, "held-out PSNR"))

    total = time.perf_counter() - start
    lines = ["", f"{'task':<28}{'PSNR before':>12}{'PSNR after':>12}{'SSIM after':>12}"
             f"{'param err':>11}{'time':>8}"]
    for name, s, _ in rows:
        err = s["param_error_final"]
        err_text = "-" if err is None else f"{100 * err:.2f}%"
        lines.append(f"{name:<28}{s['psnr_initial']:>11.2f} {s['psnr_final']:>11.2f} "
                     f"{s['ssim_final']:>11.3f} {err_text:>10} {s['time_s']:>6.0f}s")
    lines.append("PSNR (dB) and SSIM of held-out views, on 8-bit sRGB images")
    lines.append(f"total {total:.0f} s; images and plots under {out}/volume and {out}/sdf")
    print("\n".join(lines))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({name: s for name, s, _ in rows} | {"total_s": total}, f, indent=2, default=str)
    return 0
