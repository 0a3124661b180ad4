"""Lifecycle states of the conductor and of workers, with their legal transitions."""

from __future__ import annotations

import enum

from capa.errors import ConductorStateError, WorkerStateError

__all__ = ["ConductorState", "RunOutcome", "WorkerState"]


class ConductorState(enum.StrEnum):
    """Where a run is in its lifecycle.

    ``PREPARING → RUNNING → DRAINING → FINALIZING → SEALED``; any non-terminal state may
    go to ``FAILED``.
    """

    PREPARING = "preparing"
    RUNNING = "running"
    DRAINING = "draining"
    FINALIZING = "finalizing"
    SEALED = "sealed"
    FAILED = "failed"

    @property
    def permits_dispatch(self) -> bool:
        """Commands are accepted only before draining starts."""
        return self in (ConductorState.PREPARING, ConductorState.RUNNING)

    @property
    def terminal(self) -> bool:
        """SEALED and FAILED end the run."""
        return self in (ConductorState.SEALED, ConductorState.FAILED)

    def check_transition(self, target: ConductorState) -> None:
        """Raise :class:`ConductorStateError` unless ``self → target`` is legal."""
        if target not in _CONDUCTOR_EDGES[self]:
            raise ConductorStateError(f"illegal conductor transition {self} -> {target}")


_CONDUCTOR_EDGES: dict[ConductorState, frozenset[ConductorState]] = {
    ConductorState.PREPARING: frozenset({ConductorState.RUNNING, ConductorState.FAILED}),
    ConductorState.RUNNING: frozenset({ConductorState.DRAINING, ConductorState.FAILED}),
    ConductorState.DRAINING: frozenset({ConductorState.FINALIZING, ConductorState.FAILED}),
    ConductorState.FINALIZING: frozenset({ConductorState.SEALED, ConductorState.FAILED}),
    ConductorState.SEALED: frozenset(),
    ConductorState.FAILED: frozenset(),
}


class WorkerState(enum.StrEnum):
    """A worker's state: ``CLOSED → IDLE → ARMED → SAMPLING → DRAINING → IDLE``."""

    CLOSED = "closed"
    IDLE = "idle"
    ARMED = "armed"
    SAMPLING = "sampling"
    DRAINING = "draining"

    def check_transition(self, target: WorkerState, resource_id: str) -> None:
        """Raise :class:`WorkerStateError` unless ``self → target`` is legal."""
        if target not in _WORKER_EDGES[self]:
            raise WorkerStateError(f"worker {resource_id}: illegal transition {self} -> {target}")


_WORKER_EDGES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.CLOSED: frozenset({WorkerState.IDLE}),
    # IDLE -> CLOSED is close(); ARMED -> IDLE is a disarm before sampling began.
    WorkerState.IDLE: frozenset({WorkerState.ARMED, WorkerState.CLOSED}),
    WorkerState.ARMED: frozenset({WorkerState.SAMPLING, WorkerState.IDLE}),
    WorkerState.SAMPLING: frozenset({WorkerState.DRAINING}),
    WorkerState.DRAINING: frozenset({WorkerState.IDLE}),
}


class RunOutcome(enum.StrEnum):
    """How a run ended; becomes the manifest's ``run_status``."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    CRASHED = "crashed"
    CRASHED_BUT_SEALED = "crashed_but_sealed"
    """The saturation deadline tripped; the bundle was sealed anyway."""

    @property
    def run_status(self) -> str:
        """The manifest's ``run_status`` (crashed_but_sealed is recorded as crashed)."""
        return "crashed" if self is RunOutcome.CRASHED_BUT_SEALED else self.value
