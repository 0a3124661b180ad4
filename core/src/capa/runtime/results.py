"""Results of a run: the conductor's :class:`RunResult` and the CLI's :class:`HeadlessResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capa.runtime.state import ConductorState, RunOutcome

__all__ = ["HeadlessResult", "RunResult"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What the conductor reports when a run ends."""

    run_id: str
    bundle_path: Path | None
    outcome: RunOutcome
    exit_reason: str | None
    final_state: ConductorState
    saturation_event: dict[str, Any] | None = None
    started_mono_ns: int = 0
    ended_mono_ns: int = 0
    bundle_status: str = "open"
    integrity_status: str = "unknown"
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HeadlessResult:
    """Outcome of one headless run, and the process exit code it maps to (seed 001)."""

    run_id: str
    bundle_path: Path | None
    run_status: str
    bundle_status: str
    integrity_status: str
    exit_reason: str | None = None
    notices: tuple[str, ...] = ()
    """Things the operator should know that are not about this run (a crashed earlier
    run found in the runs root, to be recovered with ``capa finalize``)."""

    def exit_code(self) -> int:
        """0 completed+sealed, 1 aborted, 2 crashed, 3 verification failed (wins), 5 else."""
        if self.bundle_status == "verification_failed":
            return 3
        if self.run_status == "completed" and self.bundle_status == "sealed":
            return 0
        if self.run_status == "aborted":
            return 1
        if self.run_status == "crashed":
            return 2
        return 5

    def summary(self) -> str:
        """The summary block printed at the end of ``capa run`` (seed 000)."""
        rows = [
            ("run_id", self.run_id),
            ("bundle", str(self.bundle_path) if self.bundle_path else ""),
            ("run_status", self.run_status),
            ("bundle_status", self.bundle_status),
            ("integrity_status", self.integrity_status),
            ("exit_reason", self.exit_reason or ""),
        ]
        return "\n".join(f"{k + ':':18}{v}".rstrip() for k, v in rows)
