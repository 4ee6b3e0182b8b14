"""Writing images: EXR for linear data, PNG (sRGB) for looking at."""
from __future__ import annotations

import os

import numpy as np

from .errors import UserError


def write_image(path: str, image) -> None:
    """Write a linear image (tensor or array, H×W×C) as EXR, or as 8-bit sRGB PNG/JPG."""
    import mitsuba as mi
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    ext = os.path.splitext(path)[1].lower()
    bitmap = mi.Bitmap(array)
    if ext == ".exr":
        bitmap.write(path)
    elif ext in (".png", ".jpg", ".jpeg"):
        bitmap.convert(mi.Bitmap.PixelFormat.RGB if array.shape[2] >= 3 else mi.Bitmap.PixelFormat.Y,
                       mi.Struct.Type.UInt8, srgb_gamma=True).write(path)
    else:
        raise UserError(f"unsupported image format {ext!r} for {path}: use .exr or .png")


def read_image(path: str) -> np.ndarray:
    """Read an image as linear float32 H×W×C (PNG/JPG are converted from sRGB)."""
    import mitsuba as mi
    if not os.path.isfile(path):
        raise UserError(f"image not found: {path}")
    try:
        bitmap = mi.Bitmap(path)
    except Exception as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    bitmap = bitmap.convert(component_format=mi.Struct.Type.Float32, srgb_gamma=False)
    return np.array(bitmap)


def luminance(array: np.ndarray) -> np.ndarray:
    """Per-pixel luminance (Rec. 709) of an H×W×C array; a single channel passes through."""
    array = np.asarray(array)
    if array.ndim == 2:
        return array
    if array.shape[2] >= 3:
        return array[..., 0] * 0.2126 + array[..., 1] * 0.7152 + array[..., 2] * 0.0722
    return array[..., 0]


def write_signed_strip(path: str, panels: dict[str, np.ndarray], title: str = "") -> None:
    """A row of signed images (e.g. AD | FD | difference) with one symmetric colour map."""
    from matplotlib.figure import Figure

    lums = {name: luminance(img) for name, img in panels.items()}
    vmax = max(float(np.max(np.abs(v))) for v in lums.values()) or 1.0
    fig = Figure(figsize=(3.2 * len(lums) + 0.8, 3.4))
    axes = fig.subplots(1, len(lums))
    for ax, (name, img) in zip(np.atleast_1d(axes), lums.items()):
        im = ax.imshow(img, cmap="coolwarm", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
