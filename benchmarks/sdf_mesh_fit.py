"""A grid SDF fitted to renders of a mesh, with ``sdf_reparam`` and ``sdf_naive``: geometry metrics.

The shape is a "blob": a sphere of radius 0.5 whose radius is displaced by
0.12·(sin 3x·sin 2y + cos 3z)-style low-frequency terms (neither a sphere nor a
torus, with concave regions), written as a PLY by this script (a marching-cubes
mesh of the displaced-sphere field at 128³). ``rvs-mi optimize`` renders the
references from that mesh (``references.mesh``), fits a ``--grid``³ grid SDF
(from a 16³ sphere) with each integrator under the same config, and reports the
held-out PSNR, Chamfer distance, normal consistency and volume IoU of the
final zero level set, and the wall time of the steps. ``sdf_naive`` also runs
with as many steps as fit in ``sdf_reparam``'s step time (equal wall time).

The floor: the grid of the same resolution sampled from the true signed
distance of the mesh (exact distance to the triangles, sign by ray parity), then
meshed the same way: what the grid can represent at all.

    python benchmarks/sdf_mesh_fit.py [--steps 40] [--grid 24] [--res 24] [-o out/sdf_mesh_fit]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENE = """<scene version="3.0.0">
    <default name="integrator" value="sdf_reparam"/>
    <default name="grid" value="{grid}"/>
    <integrator type="$integrator" id="sdf">
        <volume name="sdf" type="gridvolume">
            <string name="filename" value="$grid"/>
            <boolean name="use_grid_bbox" value="false"/>
            <transform name="to_world"><scale value="2"/><translate x="-1" y="-1" z="-1"/></transform>
        </volume>
        <rgb name="albedo" value="0.8, 0.55, 0.3"/>
        <string name="shading" value="diffuse"/>
        <integer name="max_steps" value="48"/>
        <integer name="emitter_samples" value="{emitter_samples}"/>
    </integrator>
    <emitter type="directional">
        <vector name="direction" value="-0.5, -1.0, -0.7"/>
        <rgb name="irradiance" value="2.5, 2.4, 2.2"/>
    </emitter>
    <emitter type="constant"><rgb name="radiance" value="0.15, 0.2, 0.3"/></emitter>
</scene>
"""

CONFIG = """[scene]
file = "{scene}"
defines = {{ integrator = "{integrator}" }}
[references]
mesh = "{mesh}"
views = {views}
test_views = 3
res = {res}
spp = 256
rig = "sphere"
radius = 3.0
[optimize]
params = ["sdf.sdf.data"]
steps = {steps}
spp = 4
lr = 0.006
lr_schedule = "cosine"
lr_final = 0.1
loss = "l1"
multiscale = 3
[upsample]
initial_resolution = {grid}
[regularizers]
laplacian = 1.0
redistance_every = 10
sdf_params = ["sdf.sdf.data"]
[output]
checkpoint_every = 0
eval_spp = 16
mesh_resolution = {mesh_res}
"""


def blob_field(p):
    """Displaced-sphere field |p| − r(p/|p|) (negative inside; not a distance)."""
    n = np.linalg.norm(p, axis=-1)
    u = p / np.maximum(n, 1e-9)[..., None]
    r = 0.5 * (1 + 0.12 * np.sin(3 * u[..., 0]) * np.sin(2 * u[..., 1] + 1) + 0.1 * np.cos(3 * u[..., 2]))
    return n - r


def write_blob(path, n=128):
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


def sphere_grid(path, grid):
    c = -1 + (np.arange(grid) + 0.5) * 2.0 / grid
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    import mitsuba as mi
    mi.VolumeGrid((np.sqrt(x * x + y * y + z * z) - 0.5)[..., None].astype(np.float32)).write(path)


def floor_metrics(scene_path, grid_path, v, f, mesh_res):
    from rvs_mi.geometry import sdf_geometry_metrics
    from rvs_mi.scene import load_scene
    scene = load_scene(scene_path, {"grid": grid_path, "integrator": "sdf_naive"})
    return sdf_geometry_metrics(scene.integrator(), v, f, resolution=mesh_res)


def run(out, name, args, integrator, steps, scene, mesh):
    cfg = os.path.join(out, f"{name}.toml")
    with open(cfg, "w") as fh:
        fh.write(CONFIG.format(scene=scene, integrator=integrator, mesh=mesh, views=args.views, res=args.res,
                               steps=steps, grid=args.grid, mesh_res=args.mesh_res))
    subprocess.run([sys.executable, "-m", "rvs_mi.cli", "optimize", cfg, "-o", os.path.join(out, name)],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, name, "summary.json")) as fh:
        return json.load(fh)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--grid", type=int, default=24)
    ap.add_argument("--res", type=int, default=24)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--mesh-res", type=int, default=64)
    ap.add_argument("--emitter-samples", type=int, default=2)
    ap.add_argument("-o", "--output", default="out/sdf_mesh_fit")
    args = ap.parse_args(argv)
    import rvs_mi
    rvs_mi.init("llvm_ad_rgb")
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    mesh = os.path.join(out, "blob.ply")
    v, f = write_blob(mesh)
    sphere_grid(os.path.join(out, "sphere.vol"), 16)
    scene = os.path.join(out, "fit.xml")
    with open(scene, "w") as fh:
        fh.write(SCENE.format(grid=os.path.join(out, "sphere.vol"), emitter_samples=args.emitter_samples))
    rows = {}
    t0 = time.perf_counter()
    floor_grid(os.path.join(out, "floor.vol"), v, f, args.grid)
    rows["grid floor"] = {**floor_metrics(scene, os.path.join(out, "floor.vol"), v, f, args.mesh_res),
                          "psnr_final": None, "time_s": time.perf_counter() - t0, "steps": 0}
    rows["sdf_reparam"] = run(out, "reparam", args, "sdf_reparam", args.steps, scene, mesh)
    rows["sdf_naive"] = run(out, "naive", args, "sdf_naive", args.steps, scene, mesh)
    per_step = rows["sdf_naive"]["time_s"] / args.steps
    equal = max(args.steps, int(round(rows["sdf_reparam"]["time_s"] / per_step)))
    rows["sdf_naive, equal time"] = run(out, "naive_equal", args, "sdf_naive", equal, scene, mesh)
    print_table(rows, args)
    with open(os.path.join(out, "table.json"), "w") as fh:
        json.dump(rows, fh, indent=2)


def _fmt(x, spec):
    return "–" if x is None else format(x, spec)


def print_table(rows, args):
    print(f"blob mesh, grid {args.grid}³, {args.views} views + 3 held out at {args.res}², "
          f"mesh/IoU lattice {args.mesh_res}³")
    print("| run | steps | held-out PSNR | Chamfer | IoU | normal consistency | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cd = r.get("chamfer_final", r.get("chamfer"))
        iou = r.get("iou_final", r.get("iou"))
        nc = r.get("normal_consistency_final", r.get("normal_consistency"))
        print(f"| {name} | {r['steps']} | {_fmt(r['psnr_final'], '.2f')} | {_fmt(cd, '.4f')} | "
              f"{_fmt(iou, '.3f')} | {_fmt(nc, '.3f')} | {r['time_s']:.1f} |")
    first = rows["sdf_reparam"]
    print(f"initial (sphere): PSNR {first['psnr_initial']:.2f}, Chamfer {first['chamfer_initial']:.4f}, "
          f"IoU {first['iou_initial']:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
