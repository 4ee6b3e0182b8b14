"""rvs-mi: differentiable rendering on Mitsuba 3 / Dr.Jit.

``import rvs_mi`` sets no Mitsuba variant and compiles nothing. Call
:func:`init` once before loading scenes: it picks a variant, checks that the
Dr.Jit backend is usable and registers the integrator plugins of
``rvs_mi.integrators`` (``rvs``, ``rvs_hier``, ``volquad``, ``sdf_reparam``,
``sdf_naive``, ...).

Subpackages load on first attribute access, so ``import rvs_mi`` stays cheap::

    rvs_mi.scene      load_scene, parse_defines
    rvs_mi.validate   fd_check, compare_gradients
    rvs_mi.volume     load_volume_scene, attach_neural_fields, Spline, ...
    rvs_mi.sdf        AnalyticSDF, GridSDF, attach_neural_sdf, redistance, ...
    rvs_mi.sampling   make_sampler, render_pixels, weighted_loss, ...
    rvs_mi.optimize   load_config, run_optimization, load_dataset, ...
    rvs_mi.scenes     path(name) of a shipped scene
"""
from __future__ import annotations

import importlib
import os
import pkgutil

from .errors import UserError

__version__ = "0.1.0"
__all__ = ["init", "UserError", "MIN_LLVM_MAJOR", "registered_plugins"]

#: Subpackages and modules reachable as attributes of ``rvs_mi`` (imported on first use).
SUBMODULES = ("scene", "validate", "volume", "sdf", "sampling", "optimize", "scenes",
              "integrators", "imageio", "commands", "figures", "workarounds")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(SUBMODULES))

#: Dr.Jit 1.5 emits ``llvm.minimum``; x86 code generation supports it from LLVM 18.
MIN_LLVM_MAJOR = 18

_registered: dict[str, str] = {}   # plugin name -> module name
_registered_variant: str | None = None

LLVM_HELP = ("install libLLVM >= {min} (Debian/Ubuntu: `apt-get install libllvm19`; "
             "`make setup` does this) or point DRJIT_LIBLLVM_PATH at a recent libLLVM.so")


def check_llvm(version=None) -> None:
    """Raise ``RuntimeError`` unless Dr.Jit's LLVM backend can compile kernels.

    ``version`` (for tests) overrides what Dr.Jit reports; ``(-1, -1, -1)``
    means that no libLLVM could be loaded. Call this before the first kernel:
    with libLLVM < 18 Dr.Jit aborts the whole process at code generation.
    """
    import drjit as dr
    if version is None:
        loaded = dr.has_backend(dr.JitBackend.LLVM)
        version = dr.detail.llvm_version() if loaded else (-1, -1, -1)
    help_text = LLVM_HELP.format(min=MIN_LLVM_MAJOR)
    if version[0] < 0:
        raise RuntimeError(f"rvs-mi: Dr.Jit could not load libLLVM; {help_text}.")
    if version[0] < MIN_LLVM_MAJOR:
        found = ".".join(str(v) for v in version)
        raise RuntimeError(f"rvs-mi: libLLVM {found} is too old for Dr.Jit 1.5 "
                           f"(kernels would abort with 'Cannot select fminimum'); {help_text}.")


def _cuda_usable() -> bool:
    import drjit as dr
    import mitsuba as mi
    return "cuda_ad_rgb" in mi.variants() and bool(dr.has_backend(dr.JitBackend.CUDA))


def _choose_variant(variant: str | None) -> str:
    import mitsuba as mi
    variant = variant or os.environ.get("RVS_MI_VARIANT") or None
    if variant is None:
        variant = "cuda_ad_rgb" if _cuda_usable() else "llvm_ad_rgb"
    if variant not in mi.variants():
        raise UserError(f"unknown Mitsuba variant {variant!r}; available: "
                        + ", ".join(mi.variants()))
    if "_ad_" not in variant:
        raise UserError(f"variant {variant!r} has no automatic differentiation; "
                        "rvs-mi needs an *_ad_* variant such as llvm_ad_rgb")
    if variant.startswith("llvm"):
        check_llvm()
    elif variant.startswith("cuda") and not _cuda_usable():
        raise RuntimeError(f"rvs-mi: variant {variant} needs a working CUDA device")
    return variant


def _integrator_modules():
    """Names of the plugin modules in ``rvs_mi.integrators``."""
    from . import integrators
    return sorted(m.name for m in pkgutil.iter_modules(integrators.__path__)
                  if not m.name.startswith("_"))


def init(variant: str | None = None) -> str:
    """Select a Mitsuba variant and register rvs-mi's integrator plugins.

    ``variant=None`` picks ``cuda_ad_rgb`` when a CUDA device works, else
    ``llvm_ad_rgb``; the environment variable ``RVS_MI_VARIANT`` overrides the
    automatic choice. Idempotent; after a variant change the plugins are
    registered again for the new variant. Returns the active variant.
    """
    global _registered_variant
    import mitsuba as mi

    chosen = _choose_variant(variant)
    if mi.variant() != chosen:
        mi.set_variant(chosen)
    if _registered_variant == chosen:
        return chosen

    # Plugin classes derive from variant-specific Mitsuba classes, so each
    # module is (re)imported under the active variant before registering.
    if _registered_variant is not None:
        from .workarounds import refresh_ad_integrator_base
        refresh_ad_integrator_base()
    for name in _integrator_modules():
        full = f"rvs_mi.integrators.{name}"
        module = importlib.import_module(full)
        if _registered_variant is not None:
            module = importlib.reload(module)
        for plugin, cls in getattr(module, "PLUGINS", {}).items():
            mi.register_integrator(plugin, lambda props, cls=cls: cls(props))
            _registered[plugin] = full
    _registered_variant = chosen
    return chosen


def registered_plugins() -> dict[str, str]:
    """Plugin name -> defining module, for the plugins :func:`init` registered."""
    return dict(_registered)
