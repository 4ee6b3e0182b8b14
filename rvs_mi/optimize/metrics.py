"""Image quality metrics on NumPy arrays (H×W×C, linear values clipped to [0, 1])."""
from __future__ import annotations

import numpy as np


def psnr(image, ref) -> float:
    mse = float(np.mean(np.square(np.clip(image, 0, 1) - np.clip(ref, 0, 1))))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def _gaussian_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian blur of an H×W×C array ('valid' region only)."""
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, x)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, x)


def ssim(image, ref) -> float:
    """Structural similarity (Wang et al. 2004; 11×11 Gaussian window, σ = 1.5), mean over channels."""
    x = np.clip(np.asarray(image, np.float64), 0, 1)
    y = np.clip(np.asarray(ref, np.float64), 0, 1)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    sxx = _gaussian_filter(x * x) - mx * mx
    syy = _gaussian_filter(y * y) - my * my
    sxy = _gaussian_filter(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))
