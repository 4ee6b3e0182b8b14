"""Image quality metrics as NeRF papers report them: on 8-bit sRGB-encoded images.

Linear renders are clipped to [0, 1], sRGB-encoded and quantized to 8 bits
exactly as rvs-mi writes its PNGs (:func:`rvs_mi.imageio.srgb8`), then
scikit-image computes PSNR (data range 255) and SSIM (Wang et al. 2004:
11×11 Gaussian window, σ = 1.5, population covariances, mean over channels;
images under 11 pixels on a side use the largest odd uniform window).
:func:`psnr_linear` is PSNR on the clipped linear values.
"""
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..imageio import srgb8


def psnr(image, ref) -> float:
    """PSNR (dB) of the 8-bit sRGB encodings of two linear H×W×C images."""
    a, b = srgb8(image), srgb8(ref)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def ssim(image, ref) -> float:
    """SSIM of the 8-bit sRGB encodings of two linear H×W×C images."""
    a, b = srgb8(image), srgb8(ref)
    side = min(a.shape[:2])
    if side < 11:       # the 11×11 Gaussian window does not fit: the largest odd uniform window
        return float(structural_similarity(b, a, data_range=255, channel_axis=2, win_size=side - 1 + side % 2,
                                           use_sample_covariance=False))
    return float(structural_similarity(b, a, data_range=255, channel_axis=2, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def psnr_linear(image, ref) -> float:
    """PSNR (dB) of linear values clipped to [0, 1]."""
    mse = float(np.mean(np.square(np.clip(image, 0, 1) - np.clip(ref, 0, 1))))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)
