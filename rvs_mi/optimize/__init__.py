"""Inverse rendering behind ``rvs-mi optimize``: configs, datasets, cameras, the loop.

- :mod:`.config`: the TOML schema, validation and ``--set`` overrides.
- :mod:`.dataset`: NeRF-synthetic datasets (read and write).
- :mod:`.cameras`: camera rigs and the OpenGL ↔ Mitsuba camera convention.
- :mod:`.problem`: scene, optimized keys and references; :mod:`.loop`: the steps of a run;
  :mod:`.checkpoint`: checkpoints; :mod:`.report`: metrics table and plots.
- :mod:`.losses`, :mod:`.metrics`: image losses, grid regularizers, PSNR/SSIM.
"""
from .config import SCHEMA, load_config, validate
from .dataset import Split, load_dataset, render_dataset
from .loop import run_optimization, setup_problem

__all__ = ["SCHEMA", "load_config", "validate", "Split", "load_dataset", "render_dataset",
           "run_optimization", "setup_problem"]
