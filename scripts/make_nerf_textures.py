"""Write the bitmap textures of scenes/nerf_object.xml into scenes/textures/.

Each texture is drawn procedurally (NumPy, fixed seed) and saved as an 8-bit sRGB PNG:

- ``nerf_checker.png``  64²: 8×8 checker, blue / white (the body's sides)
- ``nerf_stripes.png``  64²: diagonal stripes, red / yellow, 4 px wide (legs, arms)
- ``nerf_text.png``    128²: rows of 3×5-pixel glyphs, black on yellow (the head: fine detail)
- ``nerf_panel.png``    64²: a grid of coloured buttons with dark borders (the chest)
- ``nerf_rings.png``    64²: concentric rings, green / magenta (the base disk)

    .venv/bin/python scripts/make_nerf_textures.py
"""
import os
import sys

import mitsuba as mi
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenes", "textures")

BLUE, WHITE = (0.10, 0.25, 0.85), (0.92, 0.92, 0.90)
RED, YELLOW = (0.85, 0.10, 0.08), (0.95, 0.80, 0.10)
BLACK, GREEN, MAGENTA = (0.05, 0.05, 0.05), (0.10, 0.70, 0.20), (0.80, 0.10, 0.65)


def _pick(mask, a, b):
    """H×W×3 image: colour ``a`` where ``mask``, else ``b``."""
    return np.where(mask[..., None], np.array(a), np.array(b))


def checker(n=64, cells=8):
    y, x = np.mgrid[:n, :n] * cells // n
    return _pick((x + y) % 2 == 0, BLUE, WHITE)


def stripes(n=64, width=4):
    y, x = np.mgrid[:n, :n]
    return _pick(((x + y) // width) % 2 == 0, RED, YELLOW)


def text(n=128, seed=3):
    """Rows of random 3×5 glyphs with one-pixel gaps: detail at the scale of a pixel."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, n), dtype=bool)
    for row in range(2, n - 6, 8):
        for col in range(2, n - 4, 4):
            mask[row:row + 5, col:col + 3] = rng.random((5, 3)) < 0.55
    return _pick(mask, BLACK, YELLOW)


def panel(n=64, cells=4):
    colours = [RED, GREEN, BLUE, YELLOW, MAGENTA, WHITE]
    y, x = np.mgrid[:n, :n]
    size = n // cells
    index = (y // size) * cells + (x // size)
    img = np.array(colours)[index % len(colours)]
    border = (y % size < 2) | (x % size < 2)
    img[border] = BLACK
    return img


def rings(n=64, period=6):
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    return _pick((np.hypot(x, y) // (period / 2)) % 2 == 0, GREEN, MAGENTA)


def write(name: str, image: np.ndarray) -> int:
    """Save a linear-reflectance image as an sRGB PNG; returns its size in bytes."""
    path = os.path.join(OUT, name)
    bitmap = mi.Bitmap(np.ascontiguousarray(image, dtype=np.float32), pixel_format=mi.Bitmap.PixelFormat.RGB)
    bitmap.convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.UInt8, srgb_gamma=True).write(path)
    return os.path.getsize(path)


def main() -> int:
    mi.set_variant("scalar_rgb")
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for name, fn in (("nerf_checker.png", checker), ("nerf_stripes.png", stripes), ("nerf_text.png", text),
                     ("nerf_panel.png", panel), ("nerf_rings.png", rings)):
        size = write(name, fn())
        total += size
        print(f"{name}: {size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
