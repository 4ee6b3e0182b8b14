"""rvs-mi demo: the README's main job.

1. renders a multi-view dataset (NeRF-synthetic layout, 40 + 8 views at 64², RGBA) of the
   shipped textured robot ``scenes/nerf_object.xml``;
2. fits a radiance field to it with ``rvs`` and no XML (``scenes/configs/dataset_rvs.toml``:
   density + degree-2 SH grids, 16³ → 64³), exports the result as a Mitsuba scene and renders
   a turntable of it;
3. fits a grid SDF to renders of a mesh with ``sdf_reparam``
   (``scenes/configs/sdf_mesh.toml``) and exports its zero level set as a PLY mesh;
then prints a table (8-bit sRGB PSNR/SSIM of held-out views, Chamfer distance, time).
Everything goes to ``./out/demo``.
"""
from __future__ import annotations

import json
import os
import time

NAME = "demo"
HELP = ("reconstruct a textured object from a multi-view dataset (rvs) and an SDF shape from a mesh "
        "reference (sdf_reparam)")

VIEWS, TEST_VIEWS, RES = 40, 8, 64
RADIUS = 3.3          # camera distance: the robot fills most of each view
TURNTABLE = {"frames": 24, "res": 128, "spp": 16}


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", default=os.path.join("out", "demo"), metavar="DIR",
                        help="output folder (default ./out/demo)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and frames (a smoke test)")


def _dataset(out: str) -> str:
    from tqdm import tqdm

    from .. import scenes
    from ..optimize.dataset import render_dataset
    from ..scene import load_scene
    data_dir = os.path.join(out, "dataset")
    bar = tqdm(total=VIEWS + TEST_VIEWS, desc="demo: dataset", unit="view", disable=None)
    render_dataset(load_scene(scenes.path("nerf_object.xml")), data_dir, VIEWS, RES, TEST_VIEWS, spp=64,
                   rig="sphere", seed=0, radius=RADIUS, progress=lambda *a: bar.update(1))
    bar.close()
    return data_dir


def _volume(out: str, data_dir: str, quick: bool) -> dict:
    from .. import scenes
    from ..optimize.config import load_config
    from ..optimize.loop import run_optimization
    overrides = [f"references.dataset={json.dumps(os.path.abspath(data_dir))}"]
    if quick:
        overrides += ["optimize.steps=40", "upsample.at_steps=[15, 30]"]
    config = load_config(scenes.path("configs/dataset_rvs.toml"), overrides)
    return run_optimization(config, os.path.join(out, "volume"))


def _turntable(out: str, quick: bool) -> str:
    from ..cli import main
    folder = os.path.join(out, "turntable")
    frames = 4 if quick else TURNTABLE["frames"]
    code = main(["turntable", os.path.join(out, "volume", "result", "scene.xml"), "-o", folder,
                 "--frames", str(frames), "--res", str(TURNTABLE["res"]), "--spp", str(TURNTABLE["spp"])])
    if code:
        raise RuntimeError(f"rvs-mi: the demo's turntable failed (exit {code})")
    return folder


def _sdf(out: str, quick: bool) -> dict:
    from .. import scenes
    from ..optimize.config import load_config
    from ..optimize.loop import run_optimization
    overrides = ["optimize.steps=20", "upsample.at_steps=[10]"] if quick else []
    config = load_config(scenes.path("configs/sdf_mesh.toml"), overrides)
    return run_optimization(config, os.path.join(out, "sdf"))


def _table(rows, total: float, out: str) -> str:
    lines = ["", f"{'task':<34}{'PSNR before':>12}{'PSNR after':>11}{'SSIM after':>11}"
             f"{'Chamfer':>10}{'time':>8}"]
    for name, s in rows:
        chamfer = s.get("chamfer_final")
        lines.append(f"{name:<34}{s['psnr_initial']:>11.2f} {s['psnr_final']:>10.2f} {s['ssim_final']:>10.3f} "
                     f"{'-' if chamfer is None else format(chamfer, '.4f'):>9} {s['time_s']:>6.0f}s")
    lines.append("PSNR (dB) and SSIM of held-out views, on 8-bit sRGB images; Chamfer distance of the "
                 "SDF's zero level set to the reference mesh (scene units); time of the steps")
    lines.append(f"total {total:.0f} s; under {out}: volume/ (images, curves, result/scene.xml), "
                 "turntable/, sdf/ (result/mesh.ply)")
    return "\n".join(lines)


def run(args) -> int:
    from .. import init
    from ..scene import check_output_dir

    check_output_dir(args.output)
    init()
    out = args.output
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    t0 = time.perf_counter()
    data_dir = _dataset(out)
    print(f"demo: dataset of {VIEWS}+{TEST_VIEWS} views at {RES}x{RES} in {time.perf_counter() - t0:.1f} s "
          f"-> {data_dir}")
    rows = [("textured robot, radiance field (rvs)", _volume(out, data_dir, args.quick))]
    print(f"demo: turntable -> {_turntable(out, args.quick)}")
    rows.append(("blob from a mesh, grid SDF (reparam)", _sdf(out, args.quick)))
    total = time.perf_counter() - start
    print(_table(rows, total, out))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({name: s for name, s in rows} | {"total_s": total}, f, indent=2, default=str)
    return 0
