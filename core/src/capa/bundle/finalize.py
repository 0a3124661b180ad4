"""Finalize: turn whatever reached disk into a sealed, checksummed bundle.

:func:`finalize_bundle` is a pure function of a bundle directory — it needs no writer, no
runtime and no catalog, so ``capa finalize`` can run it from another process after a crash.
In order it:

1. reads ``manifest.json`` (missing, malformed or unknown schema version: BundleError, exit
   2); a run still marked ``running`` becomes ``crashed`` (its process is gone);
2. marks the bundle ``finalizing`` and removes temporary files an interrupted write left,
   and files other producers never finished (``*.in-flight.*``, see
   :mod:`capa.bundle.unfinished`), reporting those;
3. closes what the writer could not: for every table journal ``*.in-flight.arrows`` whose
   final ``<stem>.parquet`` does not exist (a killed run), deletes the unfinished
   ``<stem>.in-flight.parquet`` and rebuilds the table from the journal, streaming batch
   by batch through the same bounded encoder the writer uses (:mod:`capa.bundle.tables`),
   via temp file + fsync + rename, keeping every complete batch and reporting a torn tail
   in ``manifest.custom.finalize_warnings``, then deletes the journal (a journal beside a
   complete final file is redundant and is deleted);
   then drops rows of tables that name files (``capa.files_column``) whose file is gone;
4. folds ``events.sqlite``'s WAL into the file so the bundle has no side files;
5. records row counts, writes the final manifest (``sealed`` / integrity ``ok``), writes
   ``manifest.sha256`` and verifies it; if the check disagrees the manifest is rewritten as
   ``verification_failed`` with integrity ``mismatch`` or ``partial``.

Nothing the writer closed is read back: a table file listed in the writer's table index
(:mod:`capa.bundle.tableindex`) and unchanged since (same size, mtime and inode) is
counted from the index and its SHA-256 — computed while its bytes were written — goes
into ``manifest.sha256`` and into the seal-time self-check as is. That self-check re-reads
every other file (``manifest.json``, ``events.sqlite``, ``run.log``, ``config/``, tables
rebuilt or changed since); ``capa catalog verify`` and ``sha256sum -c`` re-read everything.
Counting a table that is not in the index streams it one row group at a time (footers
only, except the ``channel`` column of ``scalars``), so memory does not grow with the run.

Finalizing a bundle that is already sealed only re-verifies it and changes no byte; a
bundle whose seal is recorded in the runs root's ``seals.jsonl`` or the catalog is never
sealed again (:mod:`capa.bundle.seal`, FinalizeError). After sealing, the digest of
``manifest.sha256`` is journaled (and signed when a rig key is configured). A step
that fails leaves the bundle recoverable (sources are deleted only after their Parquet file
is durably in place) and raises :class:`~capa.errors.FinalizeError` (exit 3).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from capa.bundle.accounting import WRITTEN_BY_KEY, drop_checkpoint, settle_accounting, stream_key
from capa.bundle.atomic import TEMP_PREFIX, fsync_dir, temp_path_for
from capa.bundle.counting import table_counts
from capa.bundle.events import create_events_db, seal_events
from capa.bundle.inflight import JournalReader
from capa.bundle.integrity import VerifyResult, verify_bundle, write_checksums
from capa.bundle.manifest import (
    BundleStatus,
    IntegrityStatus,
    Manifest,
    RunStatus,
    read_manifest,
    write_manifest,
)
from capa.bundle.paths import (
    CHECKSUMS_FILE,
    EVENTS_FILE,
    IN_FLIGHT_SUFFIX,
    SAMPLES_DIR,
    SCALARS_STEM,
)
from capa.bundle.seal import SealRecord, record_seal, refuse_resealing
from capa.bundle.tableindex import drop_index, read_index, unchanged
from capa.bundle.tables import (
    LONG_GROUP_ROWS,
    PARQUET_IN_FLIGHT_SUFFIX,
    REORDER_WINDOW_NS,
    WIDE_GROUP_ROWS,
    ClosedTable,
    ParquetEncoder,
)
from capa.bundle.unfinished import drop_rows_without_files, remove_unfinished
from capa.errors import BundleError, FinalizeError

__all__ = ["FinalizeResult", "finalize_bundle"]

CRASHED_REASON: Final = "recording process ended without finalizing; recovered by capa finalize"


@dataclass
class FinalizeResult:
    """What :func:`finalize_bundle` did.

    Attributes:
        bundle: the bundle directory.
        manifest: the manifest as it is on disk now.
        integrity: the verification result.
        rewritten: human lines, one per in-flight stream turned into Parquet.
        skipped: files that were already final and were left untouched.
        warnings: what finalize had to drop or repair (also in ``finalize_warnings``).
        already_sealed: the bundle was sealed before; nothing was written.
        seal: the seal journaled in the runs root (:mod:`capa.bundle.seal`).
    """

    bundle: Path
    manifest: Manifest
    integrity: VerifyResult
    rewritten: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    already_sealed: bool = False
    seal: SealRecord | None = None
    rewritten_targets: set[str] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        """Sealed and verified."""
        return self.manifest.bundle_status is BundleStatus.SEALED and self.integrity.ok


def finalize_bundle(
    bundle: Path,
    *,
    run_status: RunStatus | str | None = None,
    exit_reason: str | None = None,
) -> FinalizeResult:
    """Seal ``bundle`` (see the module docstring for the steps).

    Args:
        bundle: the bundle directory.
        run_status: terminal status to record if the manifest still says ``running``
            (default ``crashed``: the recording process ended without saying how).
        exit_reason: reason to record with that status.

    Raises:
        BundleError: the directory or manifest is missing or malformed (exit 2).
        FinalizeError: a file could not be recovered or written (exit 3).
    """
    manifest = read_manifest(bundle)
    checksums_exist = (bundle / CHECKSUMS_FILE).exists()
    if manifest.bundle_status in (BundleStatus.SEALED, BundleStatus.VERIFICATION_FAILED):
        if checksums_exist:
            return _reverify(bundle, manifest)
        if manifest.bundle_status is BundleStatus.VERIFICATION_FAILED:
            raise FinalizeError(
                f"{bundle}: manifest says verification_failed but {CHECKSUMS_FILE} is missing"
            )
    # Sealed once: a seal recorded outside the bundle forbids sealing it again.
    refuse_resealing(bundle, manifest.run_id)
    try:
        result = _finalize(bundle, manifest, run_status, exit_reason)
        result.seal = record_seal(bundle, result.manifest.run_id, result.integrity.status.value)
        return result
    except (BundleError, KeyboardInterrupt):
        raise
    except Exception as exc:
        # Disk full, permissions, a pyarrow failure: the bundle stays recoverable.
        raise FinalizeError(f"{bundle}: finalize failed: {type(exc).__name__}: {exc}") from exc


def _reverify(bundle: Path, manifest: Manifest) -> FinalizeResult:
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    return FinalizeResult(
        bundle=bundle,
        manifest=manifest,
        integrity=verify_bundle(bundle),
        skipped=files,
        already_sealed=True,
    )


def _finalize(
    bundle: Path,
    manifest: Manifest,
    run_status: RunStatus | str | None,
    exit_reason: str | None,
) -> FinalizeResult:
    result = FinalizeResult(bundle, manifest, VerifyResult(IntegrityStatus.UNKNOWN))
    ended_utc = manifest.ended_utc or _last_write_utc(bundle)
    if manifest.bundle_status is not BundleStatus.SEALED:
        updates: dict[str, Any] = {}
        if manifest.run_status is RunStatus.RUNNING:
            updates["run_status"] = RunStatus(run_status or RunStatus.CRASHED)
            updates["exit_reason"] = exit_reason if exit_reason is not None else CRASHED_REASON
        manifest = manifest.transition(bundle_status=BundleStatus.FINALIZING, **updates)
        write_manifest(bundle, manifest)
    _remove_temp_files(bundle)
    # What the writer closed and still is exactly that file: never read back.
    known = {rel: e for rel, e in read_index(bundle).items() if unchanged(bundle, e)}

    for journal in sorted(bundle.rglob(f"*{IN_FLIGHT_SUFFIX}")):
        rebuilt = _recover_table(bundle, journal, result)
        if rebuilt is not None:
            known[rebuilt.rel] = rebuilt
    result.warnings.extend(remove_unfinished(bundle))
    for parquet in sorted(bundle.rglob("*.parquet")):
        rel = parquet.relative_to(bundle).as_posix()
        if rel in known:
            if rel not in result.rewritten_targets:
                result.skipped.append(rel)
            continue
        _check_parquet(parquet, rel)
        result.skipped.append(rel)
    for parquet in sorted(bundle.rglob("*.parquet")):
        entry = known.get(parquet.relative_to(bundle).as_posix())
        if entry is not None and not entry.files_column:
            continue  # the writer's own tables name no files
        if (dropped := drop_rows_without_files(bundle, parquet)) is not None:
            result.warnings.append(dropped)
            known.pop(parquet.relative_to(bundle).as_posix(), None)
    accounting = settle_accounting(bundle, manifest.counts.get("accounting"), known)
    result.warnings.extend(f"accounting: {p}" for p in accounting.problems)
    n_events = _seal_events(bundle, result)

    custom = dict(manifest.custom)
    if result.warnings:
        custom["finalize_warnings"] = [*custom.get("finalize_warnings", []), *result.warnings]
    counts = {
        **manifest.counts,
        **table_counts(bundle, known),
        "events": n_events,
        "accounting": accounting.block,
    }
    sealed = manifest.transition(
        bundle_status=BundleStatus.SEALED,
        integrity_status=IntegrityStatus.OK,
        custom=custom,
        counts=counts,
        ended_utc=ended_utc,
    )
    write_manifest(bundle, sealed)
    drop_checkpoint(bundle)  # its content is in counts.accounting now
    drop_index(bundle)  # its content is in counts and (digests) in manifest.sha256
    digests = {rel: (e.sha256, e.size, e.mtime_ns, e.inode) for rel, e in known.items()}
    write_checksums(bundle, known=digests)
    result.integrity = verify_bundle(bundle, known=digests)
    result.manifest = sealed
    if not result.integrity.ok or accounting.mismatch:
        # Rows a device emitted that are neither in the files nor counted as dropped:
        # the bundle is not the whole run, whatever its checksums say.
        failed_status = (
            IntegrityStatus.MISMATCH
            if result.integrity.status is IntegrityStatus.MISMATCH
            else IntegrityStatus.PARTIAL
        )
        # manifest.sha256 is left as written: it no longer matches, which is the point.
        failed = manifest.transition(
            bundle_status=BundleStatus.VERIFICATION_FAILED,
            integrity_status=failed_status,
            custom=custom,
            counts=counts,
            ended_utc=ended_utc,
        )
        write_manifest(bundle, failed)
        result.manifest = failed
    return result


def _last_write_utc(bundle: Path) -> str:
    """Best estimate of when a run that never recorded its end stopped writing."""
    newest = max((p.stat().st_mtime for p in bundle.rglob("*") if p.is_file()), default=None)
    moment = datetime.fromtimestamp(newest, UTC) if newest else datetime.now(UTC)
    return moment.isoformat(timespec="microseconds")


def _remove_temp_files(bundle: Path) -> None:
    for tmp in bundle.rglob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _stem_of(journal: Path) -> Path:
    return journal.with_name(journal.name[: -len(IN_FLIGHT_SUFFIX)])


def _recover_table(bundle: Path, journal: Path, result: FinalizeResult) -> ClosedTable | None:
    """Rebuild one table from its journal; the rebuilt file's description (or ``None``)."""
    rel = journal.relative_to(bundle).as_posix()
    stem = _stem_of(journal)
    target = stem.with_name(stem.name + ".parquet")
    partial = stem.with_name(stem.name + PARQUET_IN_FLIGHT_SUFFIX)
    target_rel = target.relative_to(bundle).as_posix()
    if target.exists() and _readable_parquet(target):
        # Killed between closing the final file and deleting its journal: the final
        # file was complete and durable before the journal was touched.
        journal.unlink()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        fsync_dir(journal.parent)
        result.rewritten.append(f"{rel} -> removed ({target_rel} was already complete)")
        return None
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # no footer: unreadable; the journal holds every row it had
    reader = JournalReader(journal)
    schema = reader.schema
    if schema is None and stem.name == SCALARS_STEM and stem.parent == bundle:
        from capa.bundle.schema import scalars_schema

        schema = scalars_schema()
    if schema is None:
        result.warnings.append(
            f"{rel}: kept 0 rows in 0 complete batches; dropped {reader.file_bytes} "
            f"trailing bytes ({reader.problem})"
        )
        journal.unlink()
        fsync_dir(journal.parent)
        result.rewritten.append(f"{rel} -> removed (no complete batch to recover)")
        return None
    wide = journal.relative_to(bundle).parts[0] == SAMPLES_DIR
    tmp = temp_path_for(target)
    encoder = ParquetEncoder(
        tmp,
        schema,
        group_rows=WIDE_GROUP_ROWS if wide else LONG_GROUP_ROWS,
        window_ns=0 if wide else REORDER_WINDOW_NS,
        count_channels=stem.name == SCALARS_STEM and stem.parent == bundle,
    )
    try:
        for batch in reader:
            encoder.append(batch)
        digest = _write_parquet(encoder)
    except BaseException:
        encoder.abort()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if reader.problem is not None:
        result.warnings.append(
            f"{rel}: kept {reader.rows} rows in {reader.batches} complete batches; "
            f"dropped {reader.torn_bytes} trailing bytes ({reader.problem})"
        )
    os.replace(tmp, target)
    fsync_dir(target.parent)
    journal.unlink()
    fsync_dir(journal.parent)
    result.rewritten_targets.add(target_rel)
    result.rewritten.append(f"{rel} -> {target_rel} ({encoder.rows} rows)")
    st = target.stat()

    return ClosedTable(
        rel=target_rel,
        stream=stream_key(target_rel),
        sha256=digest,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        rows=encoder.rows,
        sorted=encoder.sorted,
        counts=dict(encoder.channel_counts or encoder.non_null),
        files_column=b"capa.files_column" in (schema.metadata or {}),
        producer=(schema.metadata or {}).get(WRITTEN_BY_KEY) == b"producer",
    )


def _write_parquet(encoder: ParquetEncoder) -> str:
    """Close a rebuilt table's file (last row group, footer, fsync); its SHA-256."""
    return encoder.close()


def _readable_parquet(path: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path).metadata  # noqa: B018 - reading the footer is the check
    except (pa.ArrowException, OSError):
        return False
    return True


def _check_parquet(path: Path, rel: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path).metadata  # noqa: B018 - reading the footer is the check
    except (pa.ArrowException, OSError) as exc:
        raise FinalizeError(
            f"{rel} is not a readable Parquet file and no in-flight stream exists to rebuild "
            f"it from ({exc}); the bundle was left as it is"
        ) from exc


def _seal_events(bundle: Path, result: FinalizeResult) -> int:
    import sqlite3

    path = bundle / EVENTS_FILE
    if not path.exists():
        result.warnings.append(f"{EVENTS_FILE} was missing; an empty event log was created")
        create_events_db(path)
    try:
        count, problem = seal_events(path)
    except sqlite3.DatabaseError as exc:
        raise FinalizeError(
            f"{EVENTS_FILE} is not a usable SQLite database ({exc}); the bundle was left as it is"
        ) from exc
    if problem:
        result.warnings.append(f"{EVENTS_FILE}: SQLite quick_check reported: {problem}")
    result.rewritten.append(f"{EVENTS_FILE} (WAL folded in, single-file mode, {count} events)")
    return count
