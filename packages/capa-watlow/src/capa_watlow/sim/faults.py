"""Fault injection for the simulated bus: one-shot misbehaviours queued by tests or the CLI."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

__all__ = ["Fault", "FaultKind", "FaultPlan"]


class FaultKind(enum.StrEnum):
    """What the simulated controller does instead of answering normally."""

    NO_REPLY = "no_reply"
    """Swallow the request (the host times out)."""
    BAD_CRC = "bad_crc"
    """Answer with a corrupted check (the host sees a garbled reply)."""
    ERROR_REPLY = "error_reply"
    """Answer with the protocol's error reply (device failure)."""
    GARBAGE = "garbage"
    """Answer with bytes that are no frame at all (line noise)."""
    SLOW_REPLY = "slow_reply"
    """Answer correctly after ``delay_s`` (longer than the host timeout: a late reply)."""
    DISCONNECT = "disconnect"
    """Drop the connection (the pseudo-terminal closes; the simulator comes back on a new one)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued fault.

    Attributes:
        kind: what to do.
        address: only for requests to this address (``None``: any).
        delay_s: reply delay for :attr:`FaultKind.SLOW_REPLY`.
    """

    kind: FaultKind
    address: int | None = None
    delay_s: float = 0.5


class FaultPlan:
    """A thread-safe queue of faults, consumed one per matching request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def inject(
        self,
        kind: FaultKind | str,
        *,
        count: int = 1,
        address: int | None = None,
        delay_s: float = 0.5,
    ) -> None:
        """Queue ``count`` faults of ``kind`` for the next matching requests."""
        fault = Fault(FaultKind(kind), address, delay_s)
        with self._lock:
            self._pending.extend([fault] * count)

    def take(self, address: int) -> Fault | None:
        """Remove and return the first fault that applies to a request for ``address``."""
        with self._lock:
            for i, fault in enumerate(self._pending):
                if fault.address is None or fault.address == address:
                    return self._pending.pop(i)
        return None

    def pending(self) -> int:
        """Number of faults not yet consumed."""
        with self._lock:
            return len(self._pending)
