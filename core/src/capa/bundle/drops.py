"""What the bundle writer could not store: dropped rows by reason, and rejected records.

Every record the writer does not write is counted here — in ``counts.dropped`` of the
manifest (rows, and rows by reason) and in the run's :class:`~capa.bundle.accounting.Ledger`
per device and stream — so that nothing a device produced disappears silently. A record
the writer refuses (``rejected``) is also reported once per kind of problem as a
``bundle.record_rejected`` event; :class:`DropCounter` remembers which kinds were reported.
Kept apart from :mod:`capa.bundle.writer`, which decides *when* a record is dropped.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from capa.bundle.accounting import Ledger, record_rows, stream_of
from capa.clock import RunClock
from capa.components.emissions import (
    DeviceRecords,
    EventRecord,
    EventSeverity,
    SampleRows,
    ScalarRows,
)

__all__ = ["DropCounter", "rejection_event", "rejection_key", "rows_in"]

_SOURCE: Final = "capa.bundle"


def rows_in(record: object) -> int:
    """Rows a record stands for: a batch's rows, a device-record batch's, else one."""
    if isinstance(record, ScalarRows | SampleRows):
        return int(getattr(record.batch, "num_rows", 0))
    if isinstance(record, DeviceRecords):
        return record_rows(record.columns)
    return 1


class DropCounter:
    """Rows dropped by reason, mirrored into the ledger; safe from any thread."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        # Producers count refused records too (note_dropped), beside the writer thread.
        self._lock = threading.Lock()
        self.rows = 0
        """Rows dropped so far, whatever the reason."""
        self._by_reason: dict[str, int] = {}
        self._rejected_kinds: set[str] = set()

    def drop(self, record: object, reason: str) -> None:
        """Count ``record``'s rows as dropped for ``reason`` (and in the ledger)."""
        rows = rows_in(record)
        with self._lock:
            self.rows += rows
            self._by_reason[reason] = self._by_reason.get(reason, 0) + rows
        stream = stream_of(record)
        if stream is not None:
            self._ledger.dropped(getattr(record, "device", ""), stream, rows, reason)

    def counts(self) -> dict[str, Any]:
        """The manifest's ``counts.dropped``: ``{"rows": n, "by_reason": {...}}``."""
        return {"rows": self.rows, "by_reason": dict(self._by_reason)}

    def first_rejection(self, key: str) -> bool:
        """Whether ``key`` is a kind of rejection not reported yet (and note it as reported).

        Only called on the writer thread.
        """
        if key in self._rejected_kinds:
            return False
        self._rejected_kinds.add(key)
        return True


def rejection_key(record: object) -> str:
    """The kind of a rejected record: its type, and a device-record batch's family."""
    return type(record).__name__ + (
        f":{record.family}" if isinstance(record, DeviceRecords) else ""
    )


def rejection_event(clock: RunClock, key: str, why: str) -> EventRecord:
    """The ``bundle.record_rejected`` error event for the first record of a kind."""
    return EventRecord(
        t_mono_ns=clock.now_ns(),
        t_utc=RunClock.utc_now_iso(),
        kind="bundle.record_rejected",
        severity=EventSeverity.ERROR,
        source=_SOURCE,
        message=why,
        metadata={"record": key},
    )
