"""Writing images: EXR for linear data, PNG (sRGB) for looking at."""
from __future__ import annotations

import os

import mitsuba as mi
import numpy as np

from .errors import UserError


def write_image(path: str, image) -> None:
    """Write a linear image (tensor or array, H×W×C) as EXR, or as 8-bit sRGB PNG/JPG
    (``mi.util.write_bitmap``)."""
    ext = os.path.splitext(path)[1]
    if ext not in (".exr", ".png", ".jpg", ".jpeg"):
        raise UserError(f"unsupported image format {ext!r} for {path}: use .exr or .png")
    mi.util.write_bitmap(path, _hwc(image), write_async=False)


def srgb8(image) -> np.ndarray:
    """The 8-bit sRGB encoding (H×W×3 uint8) of a linear image, as :func:`write_image` writes PNGs."""
    return np.array(mi.util.convert_to_bitmap(_hwc(image)[..., :3], uint8_srgb=True))


def _hwc(image) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


def open_bitmap(path: str, what: str = "image"):
    """``mi.Bitmap(path)``, or a ``UserError`` naming ``what`` and the file."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}")
    try:
        return mi.Bitmap(path)
    except Exception as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None


def read_image(path: str) -> np.ndarray:
    """Read an image as linear float32 H×W×C (PNG/JPG are converted from sRGB)."""
    bitmap = open_bitmap(path).convert(component_format=mi.Struct.Type.Float32, srgb_gamma=False)
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
