"""Mitsuba integrator plugins of rvs-mi (installed as ``rvs_mi.integrators``).

Each module defines its plugin classes and a ``PLUGINS`` dict mapping the XML
plugin name to the class; :func:`rvs_mi.init` imports every module here under
the active variant and registers them. Plugins stay thin: the math lives in
``rvs_mi.volume``, ``rvs_mi.sdf`` and friends.
"""
