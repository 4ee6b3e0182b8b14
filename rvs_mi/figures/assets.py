"""Procedural test volumes (the shipped ``scenes/volumes/blob_*.vol`` come from here).

Regenerate the shipped files with ``python -m rvs_mi.figures.assets scenes/volumes``.
"""
from __future__ import annotations

import os
import sys

import numpy as np


def blob_grids(res: int = 16, radiance_res: int = 8):
    """A soft density blob with a denser off-centre core, and a smooth RGB radiance field.

    Returns (density (res, res, res, 1), radiance (rr, rr, rr, 3)) as float32
    arrays over the unit cube, (z, y, x) order as Mitsuba's ``VolumeGrid``.
    """
    c = (np.arange(res) + 0.5) / res
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.5) ** 2)
    core = np.sqrt((x - 0.62) ** 2 + (y - 0.58) ** 2 + (z - 0.45) ** 2)
    density = 4.0 * np.clip(1 - r / 0.42, 0, 1) ** 1.5 + 12.0 * np.clip(1 - core / 0.16, 0, 1)
    c = (np.arange(radiance_res) + 0.5) / radiance_res
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    radiance = np.stack([0.25 + 0.7 * x, 0.3 + 0.5 * y * (1 - x), 0.9 - 0.6 * z], -1)
    return density[..., None].astype(np.float32), radiance.astype(np.float32)


def write_blob_assets(folder: str) -> list[str]:
    import mitsuba as mi
    if mi.variant() is None:
        mi.set_variant("scalar_rgb")
    os.makedirs(folder, exist_ok=True)
    density, radiance = blob_grids()
    paths = [os.path.join(folder, "blob_density.vol"), os.path.join(folder, "blob_radiance.vol")]
    mi.VolumeGrid(density).write(paths[0])
    mi.VolumeGrid(radiance).write(paths[1])
    return paths


if __name__ == "__main__":
    print("\n".join(write_blob_assets(sys.argv[1] if len(sys.argv) > 1 else "scenes/volumes")))
