"""Inverse rendering behind ``rvs-mi optimize``: configs, datasets, cameras, the loop.

- :mod:`.config`: the schema (typed sections), validation and ``--set`` overrides.
- :mod:`.dataset`: NeRF-synthetic datasets (read and write).
- :mod:`.cameras`: camera rigs and the OpenGL ↔ Mitsuba camera convention.
- :mod:`.problem`: scene, optimized keys and references; :mod:`.step`: one optimization step;
  :mod:`.loop`: a whole run; :mod:`.checkpoint`: checkpoints; :mod:`.report`: evaluation,
  metrics table, summary and plots.
- :mod:`.losses`, :mod:`.metrics`: image losses, grid regularizers, PSNR/SSIM (sRGB, 8 bits).
"""
from .config import SCHEMA, Config, load_config, validate
from .dataset import Split, load_dataset, render_dataset
from .loop import run_optimization
from .problem import Problem, setup_problem
from .step import step

__all__ = ["SCHEMA", "Config", "load_config", "validate", "Split", "load_dataset", "render_dataset",
           "run_optimization", "Problem", "setup_problem", "step"]
