"""Frozen optimization steps: the Dr.Jit work of a step recorded once and replayed.

Tracing a step (render, loss, ``dr.backward``, Adam) costs milliseconds of
Python per step, whatever the number of pixels. :class:`FrozenCore` records
the step's core (:func:`rvs_mi.optimize.step.make_core`) with ``dr.freeze``
and replays the recorded kernels in later steps. The recording is redone when
an input changes kind: another grid resolution (upsampling), or a view whose
sensor's variables differ in kind from those of the views recorded so far. A
replay computes what the traced step computes; its float results may differ in
the last bits, because kernels are split differently.

Where frozen steps are used, and why not elsewhere, is :func:`blocker`'s list.

The arrays of rvs-mi's integrators reach ``dr.freeze`` as one more input
(``rvs_mi.traversal.integrator_state``).

If recording fails (an integrator that reads values back to the host while
rendering, for example), the run says so in one line on stderr and traces
every step from then on; the optimizer's state is restored to what it was
before the failed call, and that step runs again, traced.
"""
from __future__ import annotations

import sys

import drjit as dr

from ..errors import UserError
from ..traversal import integrator_state


def blocker(scene, params, keys, deterministic: bool = False, sparse: bool = True) -> str | None:
    """Why the steps of this problem are traced rather than frozen (None: they are frozen).

    Frozen steps are used with rvs-mi's integrators (grid, neural and Mitsuba-volume fields,
    analytic, grid and neural SDFs), optimizing the integrator's own parameters, for sparse
    pixel batches (``sparse``; the SDF integrators' with one recording per view, see
    ``step._inputs``).

    Traced instead: whole-image steps (each view's sensor makes its own recording: with the
    demo's 40 views, 234 recordings in 600 steps, each kept in memory, for a gain of 1–14% per
    step); Mitsuba's own integrators (a replayed ``prb`` step did not see the texture
    updates of the steps before it); keys of other plugins; deterministic runs (a resumed run
    records its first step where an uninterrupted one replays a recording made from other
    inputs, and the two split, and round, their kernels differently).
    """
    if deterministic:
        return "deterministic runs are traced, so that a resumed run ends bit for bit like an uninterrupted one"
    if not sparse:
        return "whole-image steps are traced (each view would make its own recording)"
    integrator = scene.integrator()
    if getattr(integrator, "jit_objects", None) is None:
        return f"{type(integrator).__name__} is not an rvs-mi integrator"
    for key in keys:
        if not _owned_by(params, params.properties[key][2], integrator):
            return f"{key} is a parameter of another plugin than the integrator"
    return None


def _owned_by(params, node, owner) -> bool:
    """``node`` is ``owner`` or one of its children (``mi.traverse``'s hierarchy)."""
    while node is not None:
        if node is owner:
            return True
        node = params.hierarchy.get(node, (None, 0))[0]
    return False


class FrozenCore:
    """A step core run through ``dr.freeze``; it traces instead where :func:`blocker` says so
    or when recording fails, and then says why in one line (``notice``, stderr by default)."""

    def __init__(self, core, reason: str | None = None, notice=None):
        self.core = core
        self.frozen = dr.freeze(lambda scene, params, opt, data, state: core(scene, params, opt, data),
                                warn_after=100)
        self.notice = notice or (lambda line: print(line, file=sys.stderr))
        self.failed: str | None = None
        if reason is not None:
            self._fall_back(reason)

    def _fall_back(self, reason: str) -> None:
        self.failed = reason
        self.notice(f"rvs-mi optimize: steps are traced, not frozen: {reason}")

    @property
    def recordings(self) -> int:
        """How many times the step was recorded (0 once it fell back to tracing)."""
        return 0 if self.failed else self.frozen.n_recordings

    def __call__(self, scene, params, opt, data):
        if self.failed is None:
            # A replay leaves the gradients it computed on the optimizer's parameters (a traced
            # Adam step makes fresh parameters without any); a recording that followed would
            # add its own to them.
            for key in opt.keys():
                dr.clear_grad(opt[key])
            saved = _snapshot(opt)
            try:
                return self.frozen(scene, params, opt, data, integrator_state(scene.integrator()))
            except UserError:
                raise                                 # the input is wrong, not the recording
            except Exception as exc:
                # Recording failed, possibly after the step had run: restore the optimizer's
                # state and run the step traced, now and from then on.
                self._fall_back(_reason(exc))
                opt.state.update(saved)
                for key in opt.keys():
                    dr.clear_grad(opt[key])
        return self.core(scene, params, opt, data)


def _snapshot(opt) -> dict:
    """The optimizer's per-parameter state as it stands (Dr.Jit arrays are immutable, so this
    holds references, not copies). Learning-rate arrays get their own handles: ``dr.opt``
    scales them in place during a step."""
    def handle(lr):
        return type(lr)(lr) if isinstance(lr, dr.ArrayBase) else lr
    return {k: (value, promoted, handle(lr), extra) for k, (value, promoted, lr, extra) in opt.state.items()}


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception chain, on one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return " ".join(str(exc).split())[:300] or type(exc).__name__
