"""Finalize: turn whatever reached disk into a sealed, checksummed bundle.

:func:`finalize_bundle` is a pure function of a bundle directory — it needs no writer, no
runtime and no catalog, so ``capa finalize`` can run it from another process after a crash.
In order it:

1. reads ``manifest.json`` (missing, malformed or unknown schema version: BundleError, exit
   2); a run still marked ``running`` becomes ``crashed`` (its process is gone);
2. marks the bundle ``finalizing`` and removes temporary files an interrupted write left,
   and files other producers never finished (``*.in-flight.*``, see
   :mod:`capa.bundle.unfinished`), reporting those;
3. rewrites every ``*.in-flight.arrows`` stream to ``<stem>.parquet`` (zstd, row groups of
   about a million rows, sorted by ``t_mono_ns``) via temp file + fsync + rename, keeping
   every complete batch and reporting a torn tail in ``manifest.custom.finalize_warnings``,
   then deletes the stream;
   then drops rows of tables that name files (``capa.files_column``) whose file is gone;
4. folds ``events.sqlite``'s WAL into the file so the bundle has no side files;
5. records row counts, writes the final manifest (``sealed`` / integrity ``ok``), writes
   ``manifest.sha256`` and verifies it; if the check disagrees the manifest is rewritten as
   ``verification_failed`` with integrity ``mismatch`` or ``partial``.

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
from typing import TYPE_CHECKING, Any, Final

from capa.bundle.accounting import drop_checkpoint, settle_accounting
from capa.bundle.atomic import TEMP_PREFIX, fsync_dir, temp_path_for
from capa.bundle.events import create_events_db, seal_events
from capa.bundle.inflight import Recovered, recover_batches
from capa.bundle.integrity import VerifyResult, verify_bundle, write_checksums
from capa.bundle.manifest import (
    BundleStatus,
    IntegrityStatus,
    Manifest,
    RunStatus,
    read_manifest,
    write_manifest,
)
from capa.bundle.merge import sort_table, sorted_chunks
from capa.bundle.paths import (
    CHECKSUMS_FILE,
    DEVICE_RECORDS_DIR,
    EVENTS_FILE,
    IN_FLIGHT_SUFFIX,
    SCALARS_STEM,
    VIDEO_DIR,
)
from capa.bundle.seal import SealRecord, record_seal, refuse_resealing
from capa.bundle.unfinished import drop_rows_without_files, remove_unfinished
from capa.errors import BundleError, FinalizeError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ROW_GROUP_ROWS", "FinalizeResult", "finalize_bundle"]

ROW_GROUP_ROWS: Final = 1 << 20
"""Rows per Parquet row group: large groups compress well and scan fast."""

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
    result.warnings.extend(remove_unfinished(bundle))

    for stream in sorted(bundle.rglob(f"*{IN_FLIGHT_SUFFIX}")):
        _convert_stream(bundle, stream, result)
    for parquet in sorted(bundle.rglob("*.parquet")):
        rel = parquet.relative_to(bundle).as_posix()
        if rel not in result.rewritten_targets:
            _check_parquet(parquet, rel)
            result.skipped.append(rel)
    for parquet in sorted(bundle.rglob("*.parquet")):
        if (dropped := drop_rows_without_files(bundle, parquet)) is not None:
            result.warnings.append(dropped)
    accounting = settle_accounting(bundle, manifest.counts.get("accounting"))
    result.warnings.extend(f"accounting: {p}" for p in accounting.problems)
    n_events = _seal_events(bundle, result)

    custom = dict(manifest.custom)
    if result.warnings:
        custom["finalize_warnings"] = [*custom.get("finalize_warnings", []), *result.warnings]
    counts = {
        **manifest.counts,
        **_counts(bundle),
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
    write_checksums(bundle)
    result.integrity = verify_bundle(bundle)
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


def _target_for(stream: Path) -> Path:
    return stream.with_name(stream.name[: -len(IN_FLIGHT_SUFFIX)] + ".parquet")


def _convert_stream(bundle: Path, stream: Path, result: FinalizeResult) -> None:
    rel = stream.relative_to(bundle).as_posix()
    target = _target_for(stream)
    recovered = recover_batches(stream)
    if recovered.problem is not None:
        result.warnings.append(
            f"{rel}: kept {recovered.rows} rows in {len(recovered.batches)} complete batches; "
            f"dropped {recovered.torn_bytes} trailing bytes ({recovered.problem})"
        )
    if recovered.schema is None:
        if stream.name == SCALARS_STEM + IN_FLIGHT_SUFFIX:
            from capa.bundle.schema import scalars_schema

            recovered.schema = scalars_schema()
        else:
            stream.unlink()
            result.rewritten.append(f"{rel} -> removed (no complete batch to recover)")
            return
    rows = _write_parquet(recovered, target)
    stream.unlink()
    fsync_dir(stream.parent)
    target_rel = target.relative_to(bundle).as_posix()
    result.rewritten_targets.add(target_rel)
    result.rewritten.append(f"{rel} -> {target_rel} ({rows} rows)")


def _write_parquet(recovered: Recovered, target: Path) -> int:
    """Write the recovered batches to ``target`` sorted by ``t_mono_ns``; return rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = recovered.schema
    assert schema is not None
    tmp = temp_path_for(target)
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        if "t_mono_ns" in schema.names and not _is_sorted(recovered.batches):
            if _has_null_times(recovered.batches):
                # Rows without a time go last; that needs the whole table at once.
                table = sort_table(recovered.batches, schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows = table.num_rows
            else:
                # Devices interleave: merge their sorted runs in bounded chunks.
                for part in sorted_chunks(recovered.batches, schema, ROW_GROUP_ROWS):
                    writer.write_table(part, row_group_size=ROW_GROUP_ROWS)
                    rows += part.num_rows
        else:
            # Already in order (the usual case): stream through in large row groups
            # without holding the whole table in memory.
            chunk: list[pa.RecordBatch] = []
            pending = 0
            for batch in recovered.batches:
                chunk.append(batch)
                pending += batch.num_rows
                if pending >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(chunk, schema=schema))
                    rows += pending
                    chunk, pending = [], 0
            if chunk or rows == 0:
                writer.write_table(pa.Table.from_batches(chunk, schema=schema))
                rows += pending
    _fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return rows


def _has_null_times(batches: list[pa.RecordBatch]) -> bool:
    return any(b.column("t_mono_ns").null_count for b in batches)


def _is_sorted(batches: list[pa.RecordBatch]) -> bool:
    import pyarrow.compute as pc

    previous: int | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        t = batch.column("t_mono_ns")
        if t.null_count:
            return False  # the sort path puts rows without a time last
        if batch.num_rows > 1:
            ordered = pc.all(pc.less_equal(t.slice(0, len(t) - 1), t.slice(1))).as_py()
            if not ordered:
                return False
        first, last = t[0].as_py(), t[len(t) - 1].as_py()
        if previous is not None and first < previous:
            return False
        previous = last
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _counts(bundle: Path) -> dict[str, Any]:
    """Row counts of the final files (per channel for scalars), read from the files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts: dict[str, Any] = {}
    scalars = bundle / f"{SCALARS_STEM}.parquet"
    if scalars.exists():
        # ParquetFile.read, not pq.read_table: the latter imports pyarrow.dataset, which
        # imports pandas (seconds of start-up for nothing; see capa.columnar).
        table = pq.ParquetFile(scalars).read(columns=["channel"]).unify_dictionaries()
        channel = table.column("channel")
        per_channel = {
            str(item["values"]): int(item["counts"])
            for item in pc.value_counts(channel).to_pylist()
        }
        counts["scalars"] = {"rows": len(channel), "channels": dict(sorted(per_channel.items()))}
    for key, folder, suffix in (
        ("device_records", DEVICE_RECORDS_DIR, ".parquet"),
        ("frames", VIDEO_DIR, ".frames.parquet"),
    ):
        found = {
            p.name[: -len(suffix)]: int(pq.ParquetFile(p).metadata.num_rows)
            for p in sorted((bundle / folder).glob(f"*{suffix}"))
        }
        if found:
            counts[key] = found
    return counts
