"""Signed distance fields: sources, sphere tracing, the boundary warp, image formation.

- :mod:`.sources`: analytic SDFs (sphere, torus, box); :mod:`.grid`: tricubic B-spline grid SDFs.
- :mod:`.options`: the integrators' options (defaults and checks).
- :mod:`.bundle`: rays as functions of the pixel position, with their u-derivatives.
- :mod:`.trace`: fixed-step sphere tracing and shadow visibility.
- :mod:`.warp`: the warp field V and its divergence from the tracer points (per-point terms);
  :mod:`.warp_streaming` sums all points while tracing, :mod:`.warp_recorded` the top k of
  recorded points.
- :mod:`.shading`: radiance along the warped primary rays; :mod:`.render`: per-pixel
  estimator (interior samples and pixel-edge flux).
- :mod:`.neural`: an MLP SDF on a positional encoding, with the eikonal loss.
- :mod:`.redistance`: turn an SDF grid back into a distance field.
"""
from .neural import NeuralSDF, attach_neural_sdf, eikonal_loss
from .redistance import redistance
from .grid import GridSDF
from .sources import AnalyticSDF

__all__ = ["AnalyticSDF", "GridSDF", "NeuralSDF", "attach_neural_sdf", "eikonal_loss", "redistance"]
