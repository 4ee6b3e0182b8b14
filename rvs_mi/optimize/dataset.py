"""Multi-view datasets in the NeRF-synthetic layout.

Layout (as Blender's NeRF-synthetic scenes, e.g. Lego)::

    DIR/transforms_train.json   {"camera_angle_x": fov_x_radians,
                                 "frames": [{"file_path": "./train/r_0",
                                             "transform_matrix": 4x4 OpenGL camera-to-world}, ...]}
    DIR/transforms_test.json
    DIR/train/r_0.png ...       RGBA, 8-bit sRGB, straight (non-premultiplied) alpha

:func:`render_dataset` writes one from any Mitsuba scene with Mitsuba's path tracer;
:func:`load_dataset` reads it back as Mitsuba sensors and linear images.
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
    if res < 1 or spp < 1 or views < 1 or test_views < 0:
        raise UserError("views and res and spp must be >= 1 and test-views >= 0")
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


def load_dataset(folder: str, split: str = "train", res: int | None = None, background=(0.0, 0.0, 0.0),
                 spp: int = 4, max_views: int | None = None) -> Split:
    """Read one split of a NeRF-synthetic folder as sensors and linear RGB images.

    Images are composited over ``background`` with their alpha and resized to
    ``res``×``res`` when given (box filter for downscaling).
    """
    path = os.path.join(folder, f"transforms_{split}.json")
    if not os.path.isdir(folder):
        raise UserError(f"dataset folder not found: {folder}")
    if not os.path.isfile(path):
        raise UserError(f"unreadable dataset {folder}: transforms_{split}.json is missing")
    try:
        with open(path) as f:
            meta = json.load(f)
        fov_x_deg = math.degrees(float(meta["camera_angle_x"]))
        frames = meta["frames"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"unreadable dataset {path}: {exc.__class__.__name__}: {exc}") from None
    if not frames:
        raise UserError(f"dataset {path} has no frames")
    out = Split([], [], [], fov_x_deg, [])
    bg = np.asarray(background, dtype=np.float32)
    for frame in frames[:max_views]:
        try:
            c2w = gl_to_mitsuba(np.array(frame["transform_matrix"], dtype=np.float64).reshape(4, 4))
            file = os.path.normpath(os.path.join(folder, frame["file_path"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"unreadable dataset {path}: bad frame ({exc})") from None
        if not os.path.splitext(file)[1]:
            file += ".png"
        bitmap = open_bitmap(file, "dataset image")
        if res is not None and tuple(bitmap.size()) != (res, res):
            bitmap = bitmap.convert(component_format=mi.Struct.Type.Float32, srgb_gamma=False)
            bitmap = bitmap.resample([res, res])
        has_alpha = bitmap.pixel_format() in (mi.Bitmap.PixelFormat.RGBA, mi.Bitmap.PixelFormat.YA)
        array = np.array(bitmap.convert(mi.Bitmap.PixelFormat.RGBA if has_alpha else mi.Bitmap.PixelFormat.RGB,
                                        mi.Struct.Type.Float32, srgb_gamma=False), dtype=np.float32)
        rgb = array[..., :3]
        if has_alpha:
            alpha = np.clip(array[..., 3:4], 0.0, 1.0)
            rgb = rgb * alpha + bg * (1.0 - alpha)
        height, width = rgb.shape[:2]
        out.sensors.append(make_sensor(c2w, fov_x_deg, width, height, spp=spp))
        out.images.append(np.ascontiguousarray(rgb))
        out.c2w.append(c2w)
        out.files.append(file)
    return out
