"""Emission–absorption volumes: density spline, RVS and quadrature estimators, fields.

- :mod:`.spline`: piecewise-linear density on a ray, closed-form opacity and its inverse.
- :mod:`.estimators`: the RVS colour estimator and alpha-compositing quadrature.
- :mod:`.fields`: grid fields (density, radiance as RGB or spherical harmonics).
- :mod:`.neural`: hash-grid + MLP fields that replace the grids.
- :mod:`.scene`: scenes built from NumPy arrays.
"""
from .estimators import alpha_weights, quadrature_colour, rvs_colour
from .neural import NeuralField, attach_neural_fields
from .scene import load_volume_scene, volume_scene_dict
from .spline import Spline, knot_positions, stratified_uniforms

__all__ = ["Spline", "knot_positions", "stratified_uniforms", "rvs_colour", "alpha_weights",
           "quadrature_colour", "NeuralField", "attach_neural_fields", "load_volume_scene",
           "volume_scene_dict"]
