"""What ``dr.freeze`` sees of an rvs-mi plugin's state.

Mitsuba's own plugins expose their arrays to Dr.Jit's object traversal. An
rvs-mi integrator keeps its arrays in Python helper objects (fields, SDF
sources, albedo), which that traversal does not enter, so a frozen function
(``rvs_mi.optimize.frozen``) would meet them as arrays "created before
recording". An integrator names those objects in ``jit_objects()``, and
:func:`integrator_state` collects their arrays into a dict, which a frozen
step passes as one more input (the traversal does enter dicts).
"""
import drjit as dr


def _traversable(value) -> bool:
    import mitsuba as mi
    return (isinstance(value, (dr.ArrayBase, mi.Object)) or hasattr(type(value), "DRJIT_STRUCT")
            or type(value).__name__.startswith("Texture"))


def integrator_state(integrator) -> dict:
    """{name: {attribute: value}} of the Dr.Jit arrays, textures, Mitsuba objects and PyTrees
    among the attributes of each of ``integrator.jit_objects()`` ({} for integrators without
    that method, such as Mitsuba's own)."""
    objects = getattr(integrator, "jit_objects", None)
    if objects is None:
        return {}
    return {name: {k: v for k, v in vars(obj).items() if _traversable(v)}
            for name, obj in objects().items() if obj is not None}
