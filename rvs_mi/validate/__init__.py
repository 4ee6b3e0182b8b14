"""Finite-difference gradient validation.

:func:`fd_check` compares forward- and reverse-mode AD of ``mi.render``
against central finite differences for one ``mi.traverse`` key;
:func:`compare_gradients` holds the metrics and is usable on its own.
"""
from .fd import FDResult, compare_gradients, fd_check, write_fd_outputs

__all__ = ["FDResult", "compare_gradients", "fd_check", "write_fd_outputs"]
