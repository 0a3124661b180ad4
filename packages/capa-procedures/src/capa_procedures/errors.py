"""Errors raised by capa-procedures (all :class:`capa.CapaError` subclasses)."""

from __future__ import annotations

import capa

__all__ = ["ProcedureError", "SafeShutdownRequested", "StepError"]


class ProcedureError(capa.CapaError):
    """A procedure cannot start or cannot go on (exit 2: the run is refused or crashed)."""


class StepError(capa.CapaError):
    """A method step failed: a refused write, a timed-out wait with ``on_timeout = "abort"``.

    The executor records ``method.step.failed`` and re-raises it; the run ends crashed.
    """


class SafeShutdownRequested(StepError):
    """A step asks the executor to run the method's ``safe_shutdown`` step and end the method.

    Raised by ``wait`` with ``on_timeout = "safe_shutdown"``. capa-procedures' executor
    handles it; any other caller sees an ordinary step failure.
    """
