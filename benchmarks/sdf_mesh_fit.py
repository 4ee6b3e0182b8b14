"""A grid SDF fitted to renders of a mesh, with ``sdf_reparam`` and ``sdf_naive``: geometry metrics.

The run is ``rvs-mi optimize scenes/configs/sdf_mesh.toml``: references rendered
from ``scenes/meshes/blob.ply`` (a sphere of radius 0.5 whose radius is
displaced by 0.12·sin 3x·sin(2y + 1) + 0.1·cos 3z of the unit direction:
neither a sphere nor a torus, concave in places), a grid SDF from a 16³ sphere
(``scenes/fit_sdf_mesh.xml``), upsampled at ``upsample.at_steps``. It runs with
``sdf_reparam``, with ``sdf_naive`` for the same steps, and with ``sdf_naive``
for as many steps as fit in ``sdf_reparam``'s time (equal wall time), and
reports held-out PSNR, Chamfer distance, volume IoU and normal consistency of
each final zero level set.

Time per step: the mean duration of the steps after the first three, leaving out
each upsampling step and the one after it (kernel compilation); redistancing
steps count. The equal-time run gets round(reparam steps × reparam s/step ÷
naive s/step) steps, its upsampling steps at the same fractions of the run.

The floor: the grid of the final resolution sampled from the true signed
distance of the mesh (exact distance to the triangles, sign by ray parity), then
meshed the same way: what the grid can represent at all.

    python benchmarks/sdf_mesh_fit.py [--config scenes/configs/sdf_mesh.toml] [--set section.key=value ...]
                                      [-o out/sdf_mesh_fit]
    python benchmarks/sdf_mesh_fit.py --write-blob scenes/meshes/blob.ply    # regenerate the mesh
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np

from common import variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "scenes", "configs", "sdf_mesh.toml")
BLOB_LATTICE = 64      # marching-cubes lattice of the shipped blob (a ≤ 300 KB binary PLY)


def blob_field(p):
    """Displaced-sphere field |p| − r(p/|p|) (negative inside; not a distance)."""
    n = np.linalg.norm(p, axis=-1)
    u = p / np.maximum(n, 1e-9)[..., None]
    r = 0.5 * (1 + 0.12 * np.sin(3 * u[..., 0]) * np.sin(2 * u[..., 1] + 1) + 0.1 * np.cos(3 * u[..., 2]))
    return n - r


def write_blob(path, n=BLOB_LATTICE):
    """The blob as a marching-cubes mesh of its field on [-0.8, 0.8]³ (outward winding)."""
    from skimage.measure import marching_cubes
    from rvs_mi.sdf.mesh import write_ply
    ax = np.linspace(-0.8, 0.8, n)
    vol = blob_field(np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1))
    v, f, _, _ = marching_cubes(vol, 0.0, spacing=(ax[1] - ax[0],) * 3)
    v = v - 0.8
    a, b, c = (v[f[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        f = f[:, ::-1]
    write_ply(path, v, f)
    return v, f


def read_mesh(path):
    """Vertices (V×3) and faces (F×3) of a PLY/OBJ mesh, as Mitsuba loads it."""
    import mitsuba as mi
    shape = mi.load_dict({"type": os.path.splitext(path)[1][1:], "filename": path})
    params = mi.traverse(shape)
    v = np.array(params["vertex_positions"], dtype=np.float64).reshape(-1, 3)
    f = np.array(params["faces"], dtype=np.int64).reshape(-1, 3)
    return v, f


def floor_grid(path, v, f, grid):
    """The true signed distance of the mesh at the voxel centres of a grid³ grid on [-1, 1]³."""
    import mitsuba as mi
    from rvs_mi.geometry import distance_to_mesh, mesh_inside
    c = -1 + (np.arange(grid) + 0.5) * 2.0 / grid
    z, y, x = np.meshgrid(c, c, c, indexing="ij")            # z-major, x fastest
    pts = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    d, _ = distance_to_mesh(pts, v, f)
    d[mesh_inside(v, f, pts)] *= -1
    mi.VolumeGrid(d.reshape(grid, grid, grid, 1).astype(np.float32)).write(path)


def floor_row(config, out):
    """Geometry metrics of the final-resolution grid sampled from the mesh's true distance."""
    import time
    from rvs_mi.geometry import sdf_geometry_metrics
    from rvs_mi.optimize.config_rules import defines_text
    from rvs_mi.scene import load_scene
    t0 = time.perf_counter()
    v, f = read_mesh(config.references.mesh)
    grid = config.upsample.initial_resolution * 2 ** len(config.upsample.at_steps)
    path = os.path.join(out, "floor.vol")
    floor_grid(path, v, f, grid)
    defines = {**defines_text(config.scene.defines), "grid": path, "integrator": "sdf_naive"}
    scene = load_scene(config.scene.file, defines)
    m = sdf_geometry_metrics(scene.integrator(), v, f, resolution=config.output.mesh_resolution)
    return {**m, "psnr_final": None, "steps": 0, "step_s": None, "steps_s": time.perf_counter() - t0}


def _toml(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def step_time(run_dir, at_steps):
    """Mean step duration (s) after the first three steps, without upsampling steps and the next."""
    with open(os.path.join(run_dir, "metrics.csv")) as fh:
        elapsed = [float(r["elapsed_s"]) for r in csv.DictReader(fh)]
    skip = {0, 1, 2} | {s + k for s in at_steps for k in (0, 1)}
    d = [elapsed[i] - elapsed[i - 1] for i in range(1, len(elapsed)) if i not in skip]
    return float(np.mean(d))


def run(args, config, name, integrator, steps=None):
    """``rvs-mi optimize`` of the config with ``integrator`` (and ``steps``, upsampling scaled)."""
    sets = list(args.set) + [f"scene.defines={_toml({**config.scene.defines, 'integrator': integrator})}"]
    at = list(config.upsample.at_steps)
    if steps is not None:
        at = [round(s * steps / config.optimize.steps) for s in at]
        sets += [f"optimize.steps={steps}", f"upsample.at_steps={_toml(at)}"]
    out = os.path.join(args.output, name)
    cmd = [sys.executable, "-m", "rvs_mi.cli", "optimize", args.config, "-o", out]
    subprocess.run(cmd + [x for s in sets for x in ("--set", s)], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as fh:
        summary = json.load(fh)
    per_step = step_time(out, at)
    return {**summary, "step_s": per_step, "steps_s": per_step * summary["steps"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--set", action="append", default=[], metavar="section.key=value",
                    help="config override, as rvs-mi optimize --set (repeatable)")
    ap.add_argument("--write-blob", metavar="PATH", help="write the blob mesh to PATH and exit")
    ap.add_argument("-o", "--output", default="out/sdf_mesh_fit")
    args = ap.parse_args(argv)
    import rvs_mi
    rvs_mi.init(variant())
    if args.write_blob:
        write_blob(args.write_blob)
        return
    from rvs_mi.optimize.config import load_config
    config = load_config(args.config, args.set)
    args.output = os.path.abspath(args.output)
    os.makedirs(args.output, exist_ok=True)
    rows = {"grid floor": floor_row(config, args.output)}
    rows["sdf_reparam"] = run(args, config, "reparam", "sdf_reparam")
    rows["sdf_naive"] = run(args, config, "naive", "sdf_naive")
    equal = round(rows["sdf_reparam"]["steps_s"] / rows["sdf_naive"]["step_s"])
    rows["sdf_naive, equal time"] = run(args, config, "naive_equal", "sdf_naive", max(equal, 1))
    print_table(rows, config)
    with open(os.path.join(args.output, "table.json"), "w") as fh:
        json.dump(rows, fh, indent=2)


def _fmt(x, spec):
    return "–" if x is None else format(x, spec)


def print_table(rows, config):
    r = config.references
    grid = config.upsample.initial_resolution * 2 ** len(config.upsample.at_steps)
    print(f"{os.path.basename(r.mesh)}, grid {config.upsample.initial_resolution}³ → {grid}³, {r.views} views "
          f"+ {r.test_views} held out at {r.res}², mesh/IoU lattice {config.output.mesh_resolution}³")
    print("| run | steps | s/step | steps' time (s) | held-out PSNR | Chamfer | IoU | normal consistency |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        cd, iou, nc = (row.get(f"{k}_final", row.get(k)) for k in ("chamfer", "iou", "normal_consistency"))
        print(f"| {name} | {row['steps']} | {_fmt(row['step_s'], '.3f')} | {row['steps_s']:.1f} | "
              f"{_fmt(row['psnr_final'], '.2f')} | {cd:.4f} | {iou:.3f} | {nc:.3f} |")
    first, floor = rows["sdf_reparam"], rows["grid floor"]
    print(f"initial (sphere): PSNR {first['psnr_initial']:.2f}, Chamfer {first['chamfer_initial']:.4f}, "
          f"IoU {first['iou_initial']:.3f}; sdf_reparam Chamfer / floor = "
          f"{first['chamfer_final'] / floor['chamfer']:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
