"""Multi-view datasets in the NeRF-synthetic layout.

Layout (as Blender's NeRF-synthetic scenes, e.g. Lego)::

    DIR/transforms_train.json   {"camera_angle_x": fov_x_radians,
                                 "frames": [{"file_path": "./train/r_0",
                                             "transform_matrix": 4x4 OpenGL camera-to-world}, ...]}
    DIR/transforms_test.json
    DIR/train/r_0.png ...       RGBA, 8-bit sRGB, straight (non-premultiplied) alpha

:func:`render_dataset` writes one from any Mitsuba scene with Mitsuba's path tracer;
:func:`load_dataset` reads it back as Mitsuba sensors and linear images.

Transparent pixels are composited over the background as NeRF codes do: on the
sRGB-encoded values, c = rgb·α + bg·(1 − α) with ``bg`` an sRGB colour (white
is 1, 1, 1), after any resizing of the RGBA image; the composite is then
converted to linear values. The renderer composites linear radiance over the
background's linear value, so only partly transparent pixels (edges) differ
between the two.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import mitsuba as mi
import numpy as np

from ..errors import UserError
from ..imageio import open_bitmap
from .cameras import (
    gl_to_mitsuba,
    look_at,
    make_sensor,
    mitsuba_to_gl,
    rig_positions,
    split_views,
)


@dataclass
class Split:
    sensors: list            # Mitsuba sensors, one per view
    images: list             # linear float32 H×W×3 arrays, composited over the background
    c2w: list                # Mitsuba camera-to-world matrices
    fov_x_deg: float
    files: list
    alphas: list | None = None   # H×W alpha of each image (None: the images have no alpha)


def framing(scene, fov_x_deg: float, margin: float = 1.15):
    """(center, radius): a camera distance at which the scene's bounding sphere fits the view."""
    bbox = scene.bbox()
    lo, hi = np.array(bbox.min, dtype=np.float64), np.array(bbox.max, dtype=np.float64)
    if not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)) or np.any(hi < lo):
        return np.zeros(3), 4.0
    center = 0.5 * (lo + hi)
    r = 0.5 * float(np.linalg.norm(hi - lo))
    return center, margin * r / math.sin(math.radians(fov_x_deg) / 2.0)


def _write_rgba_png(path: str, rgba: np.ndarray) -> None:
    """Write a premultiplied linear RGBA render as a straight-alpha sRGB PNG."""
    alpha = rgba[..., 3:4]
    rgb = np.where(alpha > 1e-6, rgba[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    out = np.concatenate([rgb, alpha], axis=2).astype(np.float32)
    bitmap = mi.Bitmap(out, pixel_format=mi.Bitmap.PixelFormat.RGBA)
    bitmap.convert(mi.Bitmap.PixelFormat.RGBA, mi.Struct.Type.UInt8, srgb_gamma=True).write(path)


def render_dataset(scene, out_dir: str, views: int, res: int, test_views: int = 0, spp: int = 64,
                   rig: str = "sphere", seed: int = 0, fov_x_deg: float = 40.0,
                   radius: float | None = None, progress=None) -> dict:
    """Render ``views`` training and ``test_views`` test images of ``scene``.

    Cameras on a seeded ``rig`` look at the centre of the scene's bounding box
    from a distance that frames it (or ``radius``). Returns a summary dict.
    """
    for name, value, lo in (("views", views, 1), ("res", res, 1), ("spp", spp, 1), ("test_views", test_views, 0),
                            ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise UserError(f"dataset {name} must be an integer >= {lo} (got {value!r})")
    if not (isinstance(fov_x_deg, (int, float)) and 0 < fov_x_deg < 180):
        raise UserError(f"dataset fov must be in (0, 180) degrees (got {fov_x_deg!r})")
    if radius is not None and not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise UserError(f"dataset radius must be a finite number > 0 (got {radius!r})")
    center, auto_radius = framing(scene, fov_x_deg)
    radius = auto_radius if radius is None else radius
    integrator = mi.load_dict({"type": "path", "max_depth": 8, "hide_emitters": True})
    train_pos, test_pos = split_views(rig_positions(rig, views + test_views, radius, center, seed),
                                      test_views)
    splits = {"train": train_pos, "test": test_pos}
    for split, poses in splits.items():
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        frames = []
        for j, pos in enumerate(poses):
            c2w = look_at(pos, center)
            sensor = make_sensor(c2w, fov_x_deg, res, spp=spp, pixel_format="rgba")
            image = np.array(mi.render(scene, sensor=sensor, integrator=integrator, spp=spp,
                                       seed=seed * 7919 + len(frames) + (0 if split == "train" else 100003)))
            name = f"./{split}/r_{j}"
            _write_rgba_png(os.path.join(out_dir, name + ".png"), image)
            frames.append({"file_path": name, "transform_matrix": mitsuba_to_gl(c2w).tolist()})
            if progress:
                progress(split, j)
        with open(os.path.join(out_dir, f"transforms_{split}.json"), "w") as f:
            json.dump({"camera_angle_x": math.radians(fov_x_deg), "frames": frames}, f, indent=2)
    return {"train": len(splits["train"]), "test": len(splits["test"]), "res": res, "spp": spp,
            "rig": rig, "seed": seed, "radius": radius, "center": center.tolist()}


#: Top-level and per-frame keys of a transforms file that are read; ``rotation`` (Blender's
#: per-frame turntable angle in NeRF-synthetic files) describes nothing the renderer needs.
DATASET_KEYS = ("camera_angle_x", "frames")
FRAME_KEYS = ("file_path", "transform_matrix", "rotation")


def _check_pose(path: str, i: int, value) -> np.ndarray:
    """A frame's ``transform_matrix``: 4×4 finite, last row 0 0 0 1, orthonormal right-handed rotation."""
    where = f"dataset {path}: frames[{i}].transform_matrix"
    try:
        m = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise UserError(f"{where} must be a 4x4 list of numbers") from None
    if m.shape != (4, 4):
        raise UserError(f"{where} must be 4x4 (got shape {m.shape})")
    if not np.all(np.isfinite(m)):
        raise UserError(f"{where} has non-finite entries")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise UserError(f"{where} must have last row 0 0 0 1 (got {m[3].tolist()})")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) <= 0:
        raise UserError(f"{where} is not a camera pose: its 3x3 part must be a rotation "
                        f"(orthonormal, determinant +1; determinant {np.linalg.det(r):.4g})")
    return m


def _check_meta(path: str, meta) -> tuple:
    """(horizontal FOV in degrees, frames) of a parsed transforms file, or a UserError naming the field."""
    if not isinstance(meta, dict):
        raise UserError(f"dataset {path}: expected a JSON object with camera_angle_x and frames")
    for k in meta:
        if k not in DATASET_KEYS:
            raise UserError(f"dataset {path}: unsupported field {k!r} (rvs-mi reads "
                            f"{', '.join(DATASET_KEYS)}: a pinhole camera given by its horizontal FOV)")
    for k in DATASET_KEYS:
        if k not in meta:
            raise UserError(f"dataset {path}: missing field {k!r}")
    angle = meta["camera_angle_x"]
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not (0 < angle < math.pi):
        raise UserError(f"dataset {path}: camera_angle_x must be a number of radians in (0, pi) "
                        f"(got {angle!r})")
    frames = meta["frames"]
    if not isinstance(frames, list):
        raise UserError(f"dataset {path}: frames must be a list (got {type(frames).__name__})")
    if not frames:
        raise UserError(f"dataset {path} has no frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise UserError(f"dataset {path}: frames[{i}] must be an object with file_path and "
                            "transform_matrix")
        for k in frame:
            if k not in FRAME_KEYS:
                raise UserError(f"dataset {path}: frames[{i}] has unsupported field {k!r} "
                                f"(read: {', '.join(FRAME_KEYS[:2])})")
        for k in FRAME_KEYS[:2]:
            if k not in frame:
                raise UserError(f"dataset {path}: frames[{i}] is missing {k!r}")
        if not isinstance(frame["file_path"], str) or not frame["file_path"]:
            raise UserError(f"dataset {path}: frames[{i}].file_path must be a non-empty string")
    return math.degrees(float(angle)), frames


def _target_size(path: str, file: str, size, res):
    """(width, height) an image of ``size`` is resampled to: ``res`` wide, the same aspect ratio."""
    w, h = (int(v) for v in size)
    if res is None:
        return w, h
    height = res * h / w
    if height != int(height) or height < 1:
        raise UserError(f"dataset image {file} is {w}x{h}: references.res = {res} would make it "
                        f"{res}x{height:.6g}; choose res so that res*{h}/{w} is a whole number")
    return res, int(height)


def srgb_to_linear(c):
    """The sRGB transfer function's inverse (IEC 61966-2-1), element-wise."""
    c = np.asarray(c, dtype=np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def has_alpha(folder: str, split: str = "train") -> bool:
    """Whether the first image of a split has an alpha channel (decides the default background)."""
    path = os.path.join(folder, f"transforms_{split}.json")
    try:
        with open(path) as f:
            file = json.load(f)["frames"][0]["file_path"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False                      # load_dataset reports the problem
    file = os.path.normpath(os.path.join(folder, file))
    file = file if os.path.splitext(file)[1] else file + ".png"
    return os.path.isfile(file) and mi.Bitmap(file).pixel_format() in (mi.Bitmap.PixelFormat.RGBA,
                                                                      mi.Bitmap.PixelFormat.YA)


def load_dataset(folder: str, split: str = "train", res: int | None = None, background=(0.0, 0.0, 0.0),
                 spp: int = 4, max_views: int | None = None) -> Split:
    """Read one split of a NeRF-synthetic folder as sensors and linear RGB images.

    Images are, when ``res`` is given, resized to ``res`` pixels wide with their
    aspect ratio kept (box filter for downscaling), then composited over the sRGB
    colour ``background`` with their alpha on sRGB-encoded values (see the module
    docstring); ``camera_angle_x`` is the horizontal field of view. Every field is
    checked on load (``UserError`` naming the file and field).
    """
    path = os.path.join(folder, f"transforms_{split}.json")
    if not os.path.isdir(folder):
        raise UserError(f"dataset folder not found: {folder}")
    if not os.path.isfile(path):
        raise UserError(f"unreadable dataset {folder}: transforms_{split}.json is missing")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (ValueError, OSError) as exc:
        raise UserError(f"unreadable dataset {path}: {exc.__class__.__name__}: {exc}") from None
    fov_x_deg, frames = _check_meta(path, meta)
    try:
        bg = np.asarray(background, dtype=np.float32).reshape(-1)
    except (ValueError, TypeError):
        bg = np.zeros(0)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise UserError(f"dataset background must be 3 finite numbers (got {background!r})")
    if res is not None and (isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 1):
        raise UserError(f"dataset res must be an integer >= 1 (got {res!r})")
    if max_views is not None and (isinstance(max_views, bool) or not isinstance(max_views, (int, np.integer))
                                  or max_views < 1):
        raise UserError(f"dataset max_views must be an integer >= 1 (got {max_views!r})")
    out = Split([], [], [], fov_x_deg, [])
    native = None
    for i, frame in enumerate(frames[:max_views]):
        c2w = gl_to_mitsuba(_check_pose(path, i, frame["transform_matrix"]))
        file = os.path.normpath(os.path.join(folder, frame["file_path"]))
        if not os.path.splitext(file)[1]:
            file += ".png"
        bitmap = open_bitmap(file, "dataset image")
        size = tuple(int(v) for v in bitmap.size())
        if native is None:
            native = size
        elif size != native:
            raise UserError(f"dataset image {file} is {size[0]}x{size[1]}, the split's first image "
                            f"{native[0]}x{native[1]}: a split's images must share one size")
        target = _target_size(path, file, size, res)
        alpha_in = bitmap.pixel_format() in (mi.Bitmap.PixelFormat.RGBA, mi.Bitmap.PixelFormat.YA)
        # sRGB-encoded floats (8-bit files stay encoded; linear files such as EXR get encoded)
        bitmap = bitmap.convert(mi.Bitmap.PixelFormat.RGBA if alpha_in else mi.Bitmap.PixelFormat.RGB,
                                mi.Struct.Type.Float32, srgb_gamma=True)
        if target != size:
            bitmap = bitmap.resample(list(target))
        array = np.array(bitmap, dtype=np.float32)
        if not np.all(np.isfinite(array)):
            raise UserError(f"dataset image {file} has non-finite pixel values")
        rgb = array[..., :3]
        if alpha_in:
            alpha = np.clip(array[..., 3:4], 0.0, 1.0)
            rgb = rgb * alpha + bg * (1.0 - alpha)
            out.alphas = (out.alphas or []) + [alpha[..., 0]]
        rgb = srgb_to_linear(rgb)
        height, width = rgb.shape[:2]
        out.sensors.append(make_sensor(c2w, fov_x_deg, width, height, spp=spp))
        out.images.append(np.ascontiguousarray(rgb))
        out.c2w.append(c2w)
        out.files.append(file)
    return out
