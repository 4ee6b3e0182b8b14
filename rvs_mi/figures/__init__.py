"""Reproductions of the papers' figures and the generators of shipped assets.

Kept apart from the library core; reached from the command line as
``rvs-mi study1d`` (single-ray estimator study) and ``rvs-mi sdfgrad``
(SDF gradient images).

- :mod:`.study1d`: the 1-D colour-estimator variance study and its toy fit.
- :mod:`.noise`: smooth 3-D value-noise albedo grids.
- :mod:`.assets`: the procedural volumes shipped under ``scenes/volumes``.
"""
