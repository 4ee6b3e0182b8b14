"""Workarounds for behaviour of the pinned libraries (Mitsuba 3.9.1, Dr.Jit 1.5.0), in one place.

Each entry names the library version, what goes wrong and what rvs-mi does
instead. ``tests/test_workarounds.py`` reproduces the ones that reproduce in a
few lines and fails once a release changes that behaviour, so the workaround
can be dropped when the pins move.

* :func:`refresh_ad_integrator_base` — Mitsuba 3.9.1: ``mi.set_variant`` does not
  rebuild ``mitsuba.ad.integrators.common``, whose ``ADIntegrator`` keeps deriving
  from the previous variant's ``mi.Integrator``; Python plugins built on it for
  the new variant then fail to register.
* :class:`no_expand_scatter` — Dr.Jit 1.5.0, LLVM backend: the adjoint of a gather
  becomes a scatter-add in ``ReduceMode.Expand`` (one copy of the target per
  thread, reduced afterwards) whenever the target has at most
  ``dr.expand_threshold()`` entries. Reverse passes through the RVS spline
  (knots gathered per sample, knots gathered from a grid) gave gradients that
  changed from run to run by whole chunks (deterministic with one thread or
  without Expand). The volume integrators run their reverse pass inside this
  context. A few-line gather does not show it, so it has no canary test.
* :func:`mlp_without_bias` — Dr.Jit 1.5.0, LLVM backend: reverse-mode gradients of
  ``drjit.nn.Linear`` bias vectors disagreed with forward mode and finite
  differences, so the neural fields' MLPs have no bias vectors: the input
  carries a constant 1 and the output an offset.
"""
import importlib

import drjit as dr
import mitsuba as mi


def refresh_ad_integrator_base() -> None:
    """Re-import ``mitsuba.ad.integrators.common`` when its ``ADIntegrator`` is of another variant."""
    import mitsuba.ad.integrators.common as ad_common
    if not issubclass(ad_common.ADIntegrator, mi.Integrator):
        importlib.reload(ad_common)


class no_expand_scatter:
    """Context manager: reverse-mode scatter-adds use atomics, not Dr.Jit's "Expand" mode."""

    def __enter__(self):
        self.saved = dr.expand_threshold()
        dr.set_expand_threshold(0)
        return self

    def __exit__(self, *exc):
        dr.set_expand_threshold(self.saved)
        return False


def mlp_without_bias(n_in: int, widths: list[int], n_out: int, rng):
    """A packed ``drjit.nn`` ReLU MLP without bias vectors for ``n_in`` inputs plus a constant 1."""
    import drjit.nn as nn
    layers = []
    for w in widths:
        layers += [nn.Linear(-1, w, bias=False), nn.ReLU()]
    layers.append(nn.Linear(-1, n_out, bias=False))
    net = nn.Sequential(*layers).alloc(mi.TensorXf, n_in + 1, rng=rng)
    return nn.pack(net, layout="training")
