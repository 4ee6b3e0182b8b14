"""Export of a trained volume scene as a Mitsuba XML scene with ``.vol`` grid files.

:func:`export_scene` writes ``scene.xml`` and one ``<name>.vol`` per field of a
volume integrator (``rvs``, ``rvs_hier``, ``volquad``). The XML holds

* the integrator: its plugin type, its id and every property it honours
  (``integrator.properties()``), typed ``boolean``/``integer``/``float``/``string``;
* each field as ``<volume type="gridvolume">`` with ``filename`` (relative to the
  XML), ``to_world`` (the inverse of the field's world → [0, 1]³ map),
  ``filter_type``, ``wrap_mode`` and ``use_grid_bbox`` false, so the integrator
  reads back the same placement;
* the constant environment emitter, if the scene has one;
* one sensor (``perspective`` or ``orthographic``, box pixel filter): film width and height are
  ``$res`` (default: the sensor's width; a non-square film gets ``$height`` for
  its height, default the sensor's height), sample count ``$spp`` (default: the
  sensor's), so ``rvs-mi render result/scene.xml -D res=256`` renders it larger.

The file loads in plain Mitsuba once rvs-mi's plugins are registered
(``import rvs_mi; rvs_mi.init()``) and renders the same image as the exported
scene with the same seed and spp, up to float32 rounding of the grids' ``to_world``
(the sensor's matrix is written with enough digits to read back exactly).

Fields that are not grids (neural fields, other volume plugins) are baked:
evaluated at the voxel centres of a ``neural_resolution``³ lattice over their box
(default :data:`NEURAL_RESOLUTION`) and written as trilinear, clamped grids of
their raw outputs (density 1 channel, before the density activation; radiance 3
channels, before the radiance activation). Between voxel centres the baked grid
interpolates those values linearly, so its render approximates the network's,
closer at higher resolutions.

Only the integrator, a constant environment and one sensor are written: a scene
with shapes or other emitters is refused (``UserError``) before any file is written.

:func:`export_result` is what ``rvs-mi optimize`` writes into ``<out>/result/``: this
scene for a volume integrator, the zero level set of an SDF integrator as ``mesh.ply``.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import drjit as dr
import mitsuba as mi
import numpy as np

from ..errors import UserError

NEURAL_RESOLUTION = 64                   # lattice of baked non-grid fields (per axis)
MESH_RESOLUTION = 128                    # marching-cubes lattice of an SDF's mesh (per axis)
RESULT_DIR = "result"
SCENE_FILE = "scene.xml"
SAMPLERS = {"IndependentSampler": "independent", "StratifiedSampler": "stratified",
            "MultijitterSampler": "multijitter", "LowDiscrepancySampler": "ldsampler",
            "OrthogonalSampler": "orthogonal"}


def export_scene(scene, out_dir: str, sensor=None, neural_resolution: int = NEURAL_RESOLUTION) -> dict:
    """Write ``scene`` (volume integrator, constant environment, one sensor) to ``out_dir``.

    ``sensor`` defaults to the scene's first. Returns {field name: path of its
    ``.vol``, ``"scene"``: path of ``scene.xml``}. Raises ``UserError`` for an
    integrator without fields, scene content other than a constant environment,
    or a sensor that is neither perspective nor orthographic.
    """
    integrator = scene.integrator()
    if not hasattr(integrator, "fields") or not hasattr(integrator, "properties"):
        raise UserError(f"cannot export {type(integrator).__name__}: only the volume integrators "
                        "(rvs, rvs_hier, volquad) are exported as scenes")
    if isinstance(neural_resolution, bool) or not isinstance(neural_resolution, (int, np.integer)) \
            or neural_resolution < 1:
        raise UserError(f"neural_resolution must be an integer >= 1 (got {neural_resolution!r})")
    if len(scene.shapes()):
        raise UserError(f"cannot export a scene with shapes ({len(scene.shapes())}): the export "
                        "writes the volume integrator, a constant environment and one sensor")
    if sensor is None and not scene.sensors():
        raise UserError("cannot export a scene without a sensor: give one")
    sensor = sensor if sensor is not None else scene.sensors()[0]
    root = ET.Element("scene", version="3.0.0")
    sensor_xml, defaults = _sensor(sensor)
    for name, value in defaults.items():
        ET.SubElement(root, "default", name=name, value=str(value))
    integ = ET.SubElement(root, "integrator", type=plugin_name(integrator), id=_id(integrator))
    for name, value in integrator.properties().items():
        _property(integ, name, value)
    grids = {}
    for name, field in integrator.fields().items():
        data, to_local, filter_type, wrap_mode = field_grid(field, int(neural_resolution))
        grids[name] = data
        integ.append(_gridvolume(name, f"{name}.vol", to_local, filter_type, wrap_mode))
    env = _environment(scene)
    if env is not None:
        root.append(env)
    root.append(sensor_xml)
    return _write(root, grids, out_dir)


def export_result(scene, out_dir: str, sensor=None, mesh_resolution: int = MESH_RESOLUTION) -> list:
    """The result of an optimization, in ``out_dir``: a volume integrator's scene
    (:func:`export_scene`), or an SDF integrator's zero level set as ``mesh.ply``
    (``rvs_mi.sdf.mesh``, a ``mesh_resolution``³ lattice); other integrators write nothing.
    Returns the paths written."""
    integrator = scene.integrator()
    if hasattr(integrator, "fields") and hasattr(integrator, "properties"):
        return list(export_scene(scene, out_dir, sensor).values())
    if getattr(integrator, "source", None) is not None:
        from ..sdf.mesh import sdf_mesh, write_ply
        vertices, faces, normals = sdf_mesh(integrator, mesh_resolution)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "mesh.ply")
        write_ply(path, vertices, faces, normals)
        return [path]
    return []


def _write(root, grids: dict, out_dir: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, data in grids.items():
        paths[name] = os.path.join(out_dir, f"{name}.vol")
        mi.VolumeGrid(np.ascontiguousarray(data, dtype=np.float32)).write(paths[name])
    ET.indent(root, space="    ")
    paths["scene"] = os.path.join(out_dir, SCENE_FILE)
    ET.ElementTree(root).write(paths["scene"], encoding="utf-8", xml_declaration=True)
    return paths


def plugin_name(integrator) -> str:
    """The XML plugin name under which ``integrator``'s class is registered."""
    import sys

    from .. import registered_plugins
    for name, module in registered_plugins().items():
        cls = getattr(sys.modules.get(module), "PLUGINS", {}).get(name)
        if cls is not None and type(integrator).__name__ == cls.__name__:
            return name
    raise UserError(f"cannot export {type(integrator).__name__}: it is not a registered rvs-mi plugin")


def _id(obj) -> str:
    ident = obj.id() if hasattr(obj, "id") else ""
    return ident or "integrator"


def _number(x: float) -> str:
    """Shortest text that reads back as the same float64 (so float32 values round-trip)."""
    return repr(float(x))


def _property(parent, name: str, value) -> None:
    if isinstance(value, bool):
        ET.SubElement(parent, "boolean", name=name, value="true" if value else "false")
    elif isinstance(value, (int, np.integer)):
        ET.SubElement(parent, "integer", name=name, value=str(int(value)))
    elif isinstance(value, (float, np.floating)):
        ET.SubElement(parent, "float", name=name, value=_number(value))
    elif isinstance(value, str):
        ET.SubElement(parent, "string", name=name, value=value)
    else:
        raise UserError(f"cannot export integrator property {name} of type {type(value).__name__}")


def _transform(parent, name: str, matrix) -> None:
    t = ET.SubElement(parent, "transform", name=name)
    m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    ET.SubElement(t, "matrix", value=" ".join(_number(v) for v in m.ravel()))


def _gridvolume(name, filename, to_local, filter_type, wrap_mode):
    vol = ET.Element("volume", type="gridvolume", name=name)
    ET.SubElement(vol, "string", name="filename", value=filename)
    _transform(vol, "to_world", np.linalg.inv(np.asarray(to_local, dtype=np.float64)))
    ET.SubElement(vol, "string", name="filter_type", value=filter_type)
    ET.SubElement(vol, "string", name="wrap_mode", value=wrap_mode)
    ET.SubElement(vol, "boolean", name="use_grid_bbox", value="false")
    return vol


def _matrix(transform) -> np.ndarray:
    """4×4 float64 array of a (scalar or JIT) transform."""
    return np.array(transform.matrix, dtype=np.float64).reshape(4, 4)


def field_grid(field, resolution: int):
    """(data Z×Y×X×C float32, world → [0, 1]³ 4×4 map, filter, wrap) of a field; non-grid
    fields are baked on a ``resolution``³ lattice of voxel centres over their box."""
    if getattr(field, "is_grid", False):
        p = field.placement
        return np.array(field.data, dtype=np.float32), p.to_local, p.filter_type, p.wrap_mode
    to_local = _box_of(field)
    i = (np.arange(resolution, dtype=np.float64) + 0.5) / resolution
    z, y, x = np.meshgrid(i, i, i, indexing="ij")
    u = np.stack([x.ravel(), y.ravel(), z.ravel(), np.ones(x.size)])
    world = (np.linalg.inv(to_local) @ u)[:3].astype(np.float32)
    with dr.suspend_grad():
        values = field.eval(mi.Point3f(*(mi.Float(w) for w in world)))
        data = np.stack([np.array(v, dtype=np.float32) for v in values], axis=-1)
    return data.reshape(resolution, resolution, resolution, -1), to_local, "trilinear", "clamp"


def _box_of(field) -> np.ndarray:
    """World → [0, 1]³ map of a non-grid field: its ``to_local``, else its volume's bbox."""
    if hasattr(field, "to_local"):
        return _matrix(field.to_local)
    bbox = field.volume.bbox()
    lo, hi = (np.array(v, dtype=np.float64).ravel() for v in (bbox.min, bbox.max))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise UserError(f"cannot bake the {field.name} field: its volume has no finite bounding box")
    out = np.diag(np.r_[1.0 / (hi - lo), 1.0])
    out[:3, 3] = -lo / (hi - lo)
    return out


def _environment(scene):
    """``<emitter type="constant">`` of the scene's constant environment (None without one);
    any other emitter is refused."""
    out = None
    for emitter in scene.emitters():
        if not str(emitter).startswith("ConstantBackgroundEmitter"):
            raise UserError(f"cannot export emitter {str(emitter).split('[')[0]}: only a constant "
                            "environment emitter is exported")
        value = np.array(mi.traverse(emitter)["radiance.value"], dtype=np.float64).ravel()
        out = ET.Element("emitter", type="constant")
        ET.SubElement(out, "rgb", name="radiance", value=", ".join(_number(v) for v in value))
    return out


def _sensor(sensor):
    """(``<sensor>`` element, {default name: value}) of a perspective or orthographic sensor."""
    text = str(sensor)
    params = mi.traverse(sensor)
    if text.startswith("PerspectiveCamera"):
        xml = ET.Element("sensor", type="perspective")
        ET.SubElement(xml, "float", name="fov", value=_number(params["x_fov"][0]))
        ET.SubElement(xml, "string", name="fov_axis", value="x")
        for name in ("principal_point_offset_x", "principal_point_offset_y"):
            if float(params[name][0]) != 0.0:
                ET.SubElement(xml, "float", name=name, value=_number(params[name][0]))
    elif text.startswith("OrthographicCamera"):
        xml = ET.Element("sensor", type="orthographic")
    else:
        raise UserError(f"cannot export sensor {text.split('[')[0]}: use a perspective or "
                        "orthographic sensor")
    for name in ("near_clip", "far_clip"):
        ET.SubElement(xml, "float", name=name, value=_number(params[name]))
    _transform(xml, "to_world", _matrix(params["to_world"]))
    defaults = _sampler(xml, sensor.sampler())
    defaults.update(_film(xml, sensor.film()))
    return xml, defaults


def _sampler(parent, sampler) -> dict:
    kind = str(sampler).split("[")[0]
    if kind not in SAMPLERS:
        raise UserError(f"cannot export sampler {kind}: use one of {', '.join(SAMPLERS.values())}")
    s = ET.SubElement(parent, "sampler", type=SAMPLERS[kind])
    ET.SubElement(s, "integer", name="sample_count", value="$spp")
    return {"spp": int(sampler.sample_count())}


def _film(parent, film) -> dict:
    width, height = (int(v) for v in film.size())
    crop = tuple(int(v) for v in film.crop_size())
    if crop != (width, height):
        raise UserError(f"cannot export a film with a crop window ({crop[0]}x{crop[1]} of {width}x{height})")
    text = str(film)
    f = ET.SubElement(parent, "film", type="hdrfilm")
    ET.SubElement(f, "integer", name="width", value="$res")
    ET.SubElement(f, "integer", name="height", value="$res" if width == height else "$height")
    fmt = text.split("pixel_format = ")[1].split(",")[0].strip() if "pixel_format = " in text else "rgb"
    ET.SubElement(f, "string", name="pixel_format", value=fmt)
    rfilter = text.split("filter = ")[1].split("[")[0].strip() if "filter = " in text else "?"
    if rfilter != "BoxFilter":
        raise UserError(f"cannot export film filter {rfilter}: only the box filter is exported")
    ET.SubElement(f, "rfilter", type="box")
    return {"res": width} if width == height else {"res": width, "height": height}
