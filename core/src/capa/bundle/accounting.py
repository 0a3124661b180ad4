"""Sample accounting: every row a device emitted is written or dropped with a reason.

Per device and per *stream* (the bundle file a row is destined for — ``scalars``,
``samples/<table>``, ``device_records/<family>``, ``video/<camera>.frames``) the run keeps
three counters:

- ``emitted``: rows the channel pipeline produced from the device's emissions (samples
  times recorded channels for ``scalars``; *time points* for a wide ``samples/<table>``,
  one row per sample-clock tick whatever its columns; rows for device records; one per
  frame receipt) — counted before anything can fail;
- ``written``: rows the bundle writer appended to the stream's file;
- ``dropped``: rows lost on the way, by reason (``invalid_emission``, ``after_stop``,
  ``rejected``, ``writer_failed``, ``abandoned``, ``writer_abandoned``, ...).

The invariant is ``emitted == written + sum(dropped)`` once the writer has drained. The
writer thread keeps a durable checkpoint of the :class:`Ledger` in the bundle
(``accounting.checkpoint.json``, replaced atomically after each flush and at close), so
:func:`check_accounting` — called by finalize, possibly in another process after a crash —
can check the equation and recount ``written`` against the rows the sealed Parquet files
hold (read from their footers, not their data). A run that ended normally must balance
exactly; a run recovered after a kill can only be bounded (the rows queued at the kill are
reported as ``lost``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.paths import DEVICE_RECORDS_DIR, SAMPLES_DIR, SCALARS_STEM, VIDEO_DIR

__all__ = [
    "CHECKPOINT_FILE",
    "AccountingCheck",
    "Ledger",
    "check_accounting",
    "drop_checkpoint",
    "frames_stream",
    "parquet_rows",
    "read_checkpoint",
    "record_rows",
    "records_stream",
    "samples_stream",
    "settle_accounting",
    "stream_key",
    "stream_of",
]

CHECKPOINT_FILE: Final = "accounting.checkpoint.json"
"""The writer's durable copy of the ledger; finalize folds it into the manifest."""

SCALARS: Final = SCALARS_STEM


def records_stream(family: str) -> str:
    """Stream key of a device-record family (its Parquet path without ``.parquet``)."""
    return f"{DEVICE_RECORDS_DIR}/{family}"


def samples_stream(table: str) -> str:
    """Stream key of a device's wide sample table (its folder under ``samples/``)."""
    return f"{SAMPLES_DIR}/{table}"


def stream_key(rel: str) -> str:
    """Stream key of a table file (``samples/<t>/part-00001.parquet`` -> ``samples/<t>``)."""
    stem = rel[: -len(".parquet")] if rel.endswith(".parquet") else rel
    if stem.startswith(f"{SAMPLES_DIR}/"):
        return stem.rsplit("/", 1)[0]
    return stem


def frames_stream(camera: str) -> str:
    """Stream key of a camera's frame receipts."""
    return f"{VIDEO_DIR}/{camera}.frames"


def stream_of(record: object) -> str | None:
    """Stream key a run record is destined for; ``None`` for events (not accounted)."""
    from capa.components.emissions import DeviceRecords, FrameReceipt, SampleRows, ScalarRows

    if isinstance(record, ScalarRows):
        return SCALARS
    if isinstance(record, SampleRows):
        return samples_stream(record.table or record.device)
    if isinstance(record, DeviceRecords):
        return records_stream(record.family)
    if isinstance(record, FrameReceipt):
        return frames_stream(record.device or "camera")
    return None


def record_rows(columns: Any) -> int:
    """Rows of a device-record payload (a record batch, a table or a column mapping).

    Cheap: reads lengths only. A payload whose length cannot be told counts one row, so
    an unreadable record is still accounted for when it is dropped.
    """
    num_rows = getattr(columns, "num_rows", None)
    if isinstance(num_rows, int):
        return num_rows
    if isinstance(columns, Mapping) and columns:
        try:
            return len(next(iter(columns.values())))
        except TypeError:
            return 1
    return 1


@dataclass(slots=True)
class _Entry:
    emitted: int = 0
    written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class Ledger:
    """Thread-safe counters per ``(device, stream)``.

    The pipeline (worker threads) adds ``emitted`` and the drops it causes; the writer
    thread adds ``written`` and its own drops. One lock: updates are a few per batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def _entry(self, device: str, stream: str) -> _Entry:
        key = (device, stream)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        return entry

    def emitted(self, device: str, stream: str, rows: int) -> None:
        """``rows`` produced for ``stream`` from ``device``'s emissions."""
        with self._lock:
            self._entry(device, stream).emitted += rows

    def written(self, device: str, stream: str, rows: int) -> None:
        """``rows`` appended to ``stream``'s file."""
        with self._lock:
            self._entry(device, stream).written += rows

    def dropped(self, device: str, stream: str, rows: int, reason: str) -> None:
        """``rows`` lost on the way to ``stream``, and why."""
        with self._lock:
            drops = self._entry(device, stream).dropped
            drops[reason] = drops.get(reason, 0) + rows

    def emitted_and_dropped(self, device: str, stream: str, rows: int, reason: str) -> None:
        """Both at once (one lock): rows that never got near the writer."""
        with self._lock:
            entry = self._entry(device, stream)
            entry.emitted += rows
            entry.dropped[reason] = entry.dropped.get(reason, 0) + rows

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{device: {stream: {"emitted", "written", "dropped": {reason: rows}}}}``."""
        with self._lock:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for (device, stream), e in sorted(self._entries.items()):
                out.setdefault(device, {})[stream] = {
                    "emitted": e.emitted,
                    "written": e.written,
                    "dropped": dict(sorted(e.dropped.items())),
                }
            return out

    def write_checkpoint(self, bundle: Path, *, final: bool, exact: bool = True) -> None:
        """Atomically replace the bundle's checkpoint with the current counters.

        Args:
            bundle: the bundle directory.
            final: the writer has drained and closed (nothing more will be written).
            exact: the counters describe the files exactly (``False`` after a writer was
                abandoned mid-write: a batch may or may not have reached its file).
        """
        data = {"final": final, "exact": exact, "devices": self.snapshot()}
        atomic_write_bytes(bundle / CHECKPOINT_FILE, json.dumps(data, indent=1).encode())


def read_checkpoint(bundle: Path) -> dict[str, Any] | None:
    """The checkpoint's content, or ``None`` if there is none (or it is unreadable)."""
    path = bundle / CHECKPOINT_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # Atomic replacement means a torn checkpoint is not expected; treat it as
        # missing and say so in the check's problems (the caller sees status).
        return {"unreadable": True}
    return data if isinstance(data, dict) else {"unreadable": True}


@dataclass
class AccountingCheck:
    """What :func:`check_accounting` found, ready for ``manifest.counts.accounting``.

    Attributes:
        status: ``ok`` (balanced and matching the files), ``mismatch`` (a run that ended
            normally does not balance, or a file holds other row counts than written),
            ``incomplete`` (a recovered run: bounded, not exact), ``unavailable`` (no
            ledger was recorded).
        problems: one line per mismatch.
        block: the manifest block.
    """

    status: str
    problems: list[str]
    block: dict[str, Any]

    @property
    def mismatch(self) -> bool:
        """The invariant is broken."""
        return self.status == "mismatch"


def check_accounting(
    bundle: Path,
    file_rows: Mapping[str, int],
    previous: Mapping[str, Any] | None = None,
) -> AccountingCheck:
    """Check ``emitted == written + dropped`` and recount ``written`` from the files.

    Args:
        bundle: the bundle directory (its checkpoint is read).
        file_rows: stream key -> rows in that stream's sealed Parquet file (from the
            footer); streams without a file count 0 rows.
        previous: ``manifest.counts.accounting`` from an earlier finalize attempt, used
            when the checkpoint is already gone.
    """
    checkpoint = read_checkpoint(bundle)
    if checkpoint is None and previous and "devices" in previous:
        checkpoint = {
            "final": previous.get("final", False),
            "exact": previous.get("exact", False),
            "devices": previous["devices"],
        }
    if checkpoint is None or checkpoint.get("unreadable") or "devices" not in checkpoint:
        why = "unreadable" if checkpoint else "missing"
        missing: dict[str, Any] = {"status": "unavailable", "detail": f"{CHECKPOINT_FILE} {why}"}
        return AccountingCheck("unavailable", [], missing)

    devices: dict[str, dict[str, dict[str, Any]]] = checkpoint["devices"]
    exact = bool(checkpoint.get("final")) and bool(checkpoint.get("exact", True))
    problems: list[str] = []
    lost: dict[str, int] = {}
    written_per_stream: dict[str, int] = {}
    for device, streams in devices.items():
        for stream, c in streams.items():
            dropped = sum(int(v) for v in c.get("dropped", {}).values())
            emitted, written = int(c.get("emitted", 0)), int(c.get("written", 0))
            written_per_stream[stream] = written_per_stream.get(stream, 0) + written
            gap = emitted - written - dropped
            who = f"{device or '(untagged)'} -> {stream}"
            if exact and gap != 0:
                problems.append(
                    f"{who}: emitted {emitted} != written {written} + dropped {dropped} "
                    f"({gap:+d} rows unaccounted)"
                )
            elif not exact and gap > 0:
                lost[f"{device}:{stream}"] = gap
            elif gap < 0:
                problems.append(f"{who}: written {written} + dropped {dropped} > emitted {emitted}")
    files: dict[str, dict[str, int]] = {}
    for stream in sorted(set(written_per_stream) | set(file_rows)):
        in_file = int(file_rows.get(stream, 0))
        written = written_per_stream.get(stream, 0)
        files[stream] = {"rows_in_file": in_file, "written": written}
        if exact and in_file != written:
            problems.append(f"{stream}: the file holds {in_file} rows, the writer wrote {written}")
        elif not exact and in_file < written:
            problems.append(
                f"{stream}: the file holds {in_file} rows, fewer than the {written} the "
                "writer had made durable"
            )
    status = "mismatch" if problems else ("ok" if exact else "incomplete")
    block: dict[str, Any] = {
        "status": status,
        "final": bool(checkpoint.get("final")),
        "exact": exact,
        "devices": devices,
        "files": files,
    }
    if lost:
        block["lost"] = lost
    if problems:
        block["problems"] = problems
    return AccountingCheck(status, problems, block)


WRITTEN_BY_KEY: Final = b"capa.written_by"
"""Schema metadata key of a table its producer writes into the bundle itself.

A table whose Arrow schema metadata has ``capa.written_by = producer`` (capa-camera's
segment-committed frames table) never passes through the bundle writer, so the writer's
ledger has no rows for it; its producer accounts for it (e.g. the camera's
``captured = frames + dropped + lost_uncommitted`` in ``manifest.cameras``). Accounting
leaves such tables out of its recount instead of calling every row of them unaccounted.
"""


def parquet_rows(bundle: Path, known: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Rows of every sealed stream file the bundle writer wrote, per stream key.

    The parts of a wide table (``samples/<table>/*.parquet``) add up under one key.
    ``known`` maps relative paths of files the writer closed and that are unchanged to
    their :class:`~capa.bundle.tables.ClosedTable`: their rows are taken from there and
    the file is not opened. Any other file's rows come from its Parquet footer (no data
    is read); tables their producer wrote itself (:data:`WRITTEN_BY_KEY`) are left out.
    """
    import pyarrow.parquet as pq

    known = known or {}
    rows: dict[str, int] = {}
    candidates = [bundle / f"{SCALARS_STEM}.parquet"]
    candidates += sorted((bundle / SAMPLES_DIR).glob("*/*.parquet"))
    candidates += sorted((bundle / DEVICE_RECORDS_DIR).glob("*.parquet"))
    candidates += sorted((bundle / VIDEO_DIR).glob("*.frames.parquet"))
    for path in candidates:
        if not path.exists():
            continue
        rel = path.relative_to(bundle).as_posix()
        key = stream_key(rel)
        entry = known.get(rel)
        if entry is not None:
            if not entry.producer:
                rows[key] = rows.get(key, 0) + int(entry.rows)
            continue
        footer = pq.ParquetFile(path)
        metadata = footer.schema_arrow.metadata or {}
        if metadata.get(WRITTEN_BY_KEY) == b"producer":
            continue
        rows[key] = rows.get(key, 0) + int(footer.metadata.num_rows)
    return rows


def settle_accounting(
    bundle: Path,
    previous: Mapping[str, Any] | None,
    known: Mapping[str, Any] | None = None,
) -> AccountingCheck:
    """Finalize's step: check the accounting and log a mismatch in ``events.sqlite``.

    Call it after every in-flight stream became Parquet and before the event log is
    sealed. A mismatch is an ``error`` event ``bundle.accounting_mismatch``; the caller
    marks the bundle ``verification_failed`` (integrity ``partial``).
    """
    check = check_accounting(bundle, parquet_rows(bundle, known), previous)
    if check.mismatch:
        _log_mismatch(bundle, check.problems)
    return check


def drop_checkpoint(bundle: Path) -> None:
    """Remove the checkpoint once the manifest holds its content (before checksums)."""
    from capa.bundle.atomic import fsync_dir

    try:
        (bundle / CHECKPOINT_FILE).unlink()
    except FileNotFoundError:
        return
    fsync_dir(bundle)


def _log_mismatch(bundle: Path, problems: list[str]) -> None:
    import sqlite3

    from capa.bundle.events import append_events
    from capa.bundle.paths import EVENTS_FILE
    from capa.clock import RunClock
    from capa.components.emissions import EventRecord, EventSeverity

    path = bundle / EVENTS_FILE
    if not path.exists():
        return  # finalize creates an empty log and warns; the manifest has the problems
    event = EventRecord(
        t_mono_ns=0,  # after the run: the run clock is gone, order by id
        t_utc=RunClock.utc_now_iso(),
        kind="bundle.accounting_mismatch",
        severity=EventSeverity.ERROR,
        source="capa.bundle",
        message="; ".join(problems[:5])
        + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
        metadata={"problems": problems},
    )
    try:
        append_events(path, [event])
    except sqlite3.Error as exc:
        # Finalize still records the problems in the manifest and fails verification.
        problems.append(f"the mismatch could not be logged in {EVENTS_FILE}: {exc}")
