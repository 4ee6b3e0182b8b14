"""References rendered from a mesh (``references.mesh``) and the run's geometry metrics.

The reference scene is built from the fit scene's XML (``scene.file`` loaded once
more, so that no object is shared with the fit scene): its emitters and its
meshes, plus the reference mesh (.ply or .obj, in its own coordinates: no
transform is applied) with a two-sided diffuse BSDF of the SDF integrator's
albedo. Mitsuba's ``direct`` integrator renders it with one emitter sample and
no BSDF sample per camera sample, which is the SDF integrators' ``diffuse``
shading (emitter sampling only, Lambertian, shadowed): the two render the same
expected image of the same surface. (More emitter samples per camera sample
would not help: Mitsuba's ``direct`` does not divide the contribution of delta
emitters, such as a ``directional`` sun, by their count; ``references.spp`` sets
the references' noise.)
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import UserError
from .config_rules import defines_text

MESH_TYPES = {".ply": "ply", ".obj": "obj"}
GEOMETRY_DOC = ("chamfer: mean distance (scene units) of surface samples of each mesh to the other, "
                "averaged over both directions; normal_consistency: mean |n.n'| of those samples' normals "
                "and the nearest triangles'; iou: volume IoU on a lattice (reference inside by ray parity, "
                "result inside by the SDF sign); the result is the SDF's zero level set meshed by marching "
                "cubes at output.mesh_resolution")


def mesh_plugin(path: str) -> dict:
    """The Mitsuba shape dict of a .ply/.obj file (refused when missing or of another type)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_TYPES:
        raise UserError(f"config references.mesh = {path!r}: expected a .ply or .obj file")
    if not os.path.isfile(path):
        raise UserError(f"config references.mesh: file not found: {path}")
    return {"type": MESH_TYPES[ext], "filename": path}


def load_reference_mesh(path: str):
    """(vertices (V, 3), faces (F, 3)) of the reference mesh, as Mitsuba reads it."""
    import mitsuba as mi
    try:
        shape = mi.load_dict(mesh_plugin(path))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"config references.mesh: cannot load {path}: {str(exc).splitlines()[-1]}") from None
    params = mi.traverse(shape)
    v = np.array(params["vertex_positions"], dtype=np.float64).reshape(-1, 3)
    f = np.array(params["faces"], dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        raise UserError(f"config references.mesh: {path} has no faces")
    return v, f


def sdf_integrator(scene, what: str = "references.mesh"):
    """The scene's SDF integrator (``sdf_reparam``/``sdf_naive``), or a UserError."""
    integrator = scene.integrator()
    if not (hasattr(integrator, "source") and hasattr(integrator, "albedo")):
        raise UserError(f"config {what} needs an sdf_reparam or sdf_naive scene (scene.file's "
                        f"integrator is {type(integrator).__name__})")
    return integrator


def _albedo(integrator) -> list:
    albedo = integrator.albedo
    if albedo.volume is not None:
        raise UserError("config references.mesh: the SDF's albedo is a volume; a mesh reference "
                        "takes a constant <rgb name=\"albedo\">")
    return [float(x) for x in np.array(albedo.value, dtype=np.float64).ravel()[:3]]


def mesh_reference_scene(config, fit_scene):
    """The scene that renders the references: see the module."""
    import mitsuba as mi
    from ..scene import load_scene
    integrator = sdf_integrator(fit_scene)
    if integrator.options.shading != "diffuse":
        raise UserError("config references.mesh renders a diffuse mesh: the SDF integrator of scene.file "
                        f"must use shading = \"diffuse\" (it uses {integrator.options.shading!r})")
    albedo = _albedo(integrator)
    fresh = load_scene(config.scene.file, defines_text(config.scene.defines))
    d = {"type": "scene", "integrator": {"type": "direct", "emitter_samples": 1, "bsdf_samples": 0}}
    for i, emitter in enumerate(fresh.emitters()):
        if emitter.get_shape() is None:                # area emitters come with their shape
            d[f"emitter_{i}"] = emitter
    for i, shape in enumerate(fresh.shapes()):
        d[f"shape_{i}"] = shape
    d["reference_mesh"] = {**mesh_plugin(config.references.mesh),
                           "bsdf": {"type": "twosided", "bsdf": {
                               "type": "diffuse", "reflectance": {"type": "rgb", "value": albedo}}}}
    try:
        return mi.load_dict(d)
    except Exception as exc:
        raise UserError(f"config references.mesh: cannot build the reference scene: "
                        f"{str(exc).splitlines()[-1]}") from None


def geometry(config, problem) -> dict:
    """chamfer, normal_consistency and iou of the fit scene's SDF against the reference
    mesh ({} without ``references.mesh``)."""
    import drjit as dr
    from ..geometry import sdf_geometry_metrics
    if not config.references.mesh:
        return {}
    v, f = load_reference_mesh(config.references.mesh)
    with dr.suspend_grad():
        return sdf_geometry_metrics(sdf_integrator(problem.scene), v, f,
                                    resolution=config.output.mesh_resolution, seed=config.optimize.seed)


def geometry_summary(config, problem, initial: dict) -> dict:
    """Summary entries ``<metric>_initial`` / ``<metric>_final`` ({} without ``references.mesh``)."""
    final = geometry(config, problem)
    if not final:
        return {}
    out = {"geometry_metrics": GEOMETRY_DOC}
    for k, v in final.items():
        out[f"{k}_initial"], out[f"{k}_final"] = initial.get(k), v
    return out
