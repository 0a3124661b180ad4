"""Crash recovery: the ``.runtime-active.json`` checkpoint and stale-run detection.

While a bundle records, ``<runs_root>/.runtime-active.json`` names the process (pid, its
start time where the OS tells us, host), the run id, the bundle and config paths and the
times. It is written atomically when the bundle opens and removed at a clean close. If the
process dies hard (SIGKILL, power loss) the file stays behind; the next start
(:func:`recover_stale`, called by :meth:`BundleWriter.open` and ``capa finalize``) sees
that the pid is gone, marks the run ``crashed`` in its manifest and in the catalog, removes
the checkpoint and tells the user to run ``capa finalize <run_id>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.manifest import BundleStatus, RunStatus, read_manifest, write_manifest
from capa.bundle.paths import ACTIVE_CHECKPOINT, check_run_id
from capa.errors import BundleError

__all__ = [
    "ActiveRun",
    "StaleRun",
    "bundle_in_root",
    "clear_active",
    "process_start_ticks",
    "read_active",
    "recover_stale",
    "write_active",
]


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of stat(5), counting from 1
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ActiveRun:
    """Content of ``.runtime-active.json``."""

    pid: int
    run_id: str
    bundle_path: str
    config_path: str | None
    started_utc: str
    updated_utc: str
    host: str
    pid_start_ticks: int | None = None

    @classmethod
    def for_this_process(
        cls, run_id: str, bundle: Path, config_path: str | None = None
    ) -> ActiveRun:
        """A checkpoint describing the calling process recording ``run_id``."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        pid = os.getpid()
        return cls(
            pid=pid,
            run_id=run_id,
            bundle_path=str(bundle.resolve()),
            config_path=config_path,
            started_utc=now,
            updated_utc=now,
            host=socket.gethostname(),
            pid_start_ticks=process_start_ticks(pid),
        )

    def is_alive(self) -> bool:
        """Whether the recording process may still be running.

        A checkpoint from another host cannot be checked and counts as alive (never mark
        someone else's running experiment crashed).
        """
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        if self.pid_start_ticks is not None:
            now_ticks = process_start_ticks(self.pid)
            if now_ticks is not None and now_ticks != self.pid_start_ticks:
                return False  # the pid was reused by an unrelated process
        return True


def write_active(runs_root: Path, active: ActiveRun) -> None:
    """Atomically write the checkpoint."""
    data = json.dumps(asdict(active), indent=2) + "\n"
    atomic_write_bytes(runs_root / ACTIVE_CHECKPOINT, data.encode("utf-8"))


def read_active(runs_root: Path) -> ActiveRun | None:
    """The checkpoint, ``None`` if absent; BundleError if unreadable."""
    path = runs_root / ACTIVE_CHECKPOINT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ActiveRun(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"{path}: unreadable run checkpoint ({exc})") from exc


def clear_active(runs_root: Path, run_id: str) -> None:
    """Remove the checkpoint if it belongs to ``run_id`` (someone else's stays)."""
    with contextlib.suppress(BundleError):
        active = read_active(runs_root)
        if active is not None and active.run_id == run_id:
            with contextlib.suppress(FileNotFoundError):
                (runs_root / ACTIVE_CHECKPOINT).unlink()


@dataclass(frozen=True)
class StaleRun:
    """A run found abandoned by a dead process.

    Attributes:
        run_id: the run.
        bundle: its bundle directory.
        marked_crashed: the manifest said ``running`` and now says ``crashed``.
        message: what to tell the user (names ``capa finalize``).
    """

    run_id: str
    bundle: Path
    marked_crashed: bool
    message: str
    foreign_path: str | None = None
    """The checkpoint's recorded bundle path when it lay outside the runs root (ignored)."""


def bundle_in_root(runs_root: Path, active: ActiveRun) -> tuple[Path, bool]:
    """The checkpointed run's bundle inside ``runs_root``, and whether it was moved.

    "Moved": the checkpoint's recorded absolute path points elsewhere (the runs root was
    copied or moved). Only ``runs_root / run_id`` is ever used: following a foreign
    absolute path would let recovery of a copy write into the original bundle.
    """
    local = runs_root / check_run_id(active.run_id)  # a plain name, never a path
    try:
        recorded = Path(active.bundle_path).resolve()
        moved = recorded != local.resolve()
    except (OSError, RuntimeError, ValueError):  # unresolvable (loop, NUL): not ours
        moved = True
    return local, moved


def recover_stale(runs_root: Path) -> StaleRun | None:
    """Handle a checkpoint left by a dead process; ``None`` when there is none.

    Raises:
        BundleError: the checkpoint belongs to a process that is still alive (a run is
            recording in this runs root right now).
    """
    active = read_active(runs_root)
    if active is None:
        return None
    if active.pid == os.getpid() or active.is_alive():
        raise BundleError(
            f"run {active.run_id} is still recording in {runs_root} "
            f"(pid {active.pid} on {active.host})"
        )
    bundle, moved = bundle_in_root(runs_root, active)
    marked = False
    note = ""
    if moved:
        # A copied (or moved) runs root: the checkpoint's absolute path leads back to the
        # original. Recovery touches only the bundle of this runs root.
        note = (
            f" (the checkpoint names {active.bundle_path}, outside this runs root; "
            f"used {bundle} instead)"
        )
    try:
        manifest = read_manifest(bundle)
    except BundleError as exc:
        message = (
            f"run {active.run_id} (pid {active.pid}) ended without finalizing and its "
            f"manifest cannot be read ({exc}){note}"
        )
    else:
        if manifest.run_status is RunStatus.RUNNING:
            crashed = manifest.transition(
                run_status=RunStatus.CRASHED,
                exit_reason=f"process {active.pid} ended without closing the bundle",
            )
            try:
                write_manifest(bundle, crashed)
            except OSError as exc:
                # A full disk: finalize marks the run crashed itself when it seals it.
                note += f" (could not mark it crashed yet: {exc})"
            else:
                manifest = crashed
                marked = True
        from capa.bundle.catalog import Catalog

        with contextlib.suppress(BundleError):
            Catalog(runs_root).upsert(manifest, bundle)
        needs_finalize = manifest.bundle_status not in (
            BundleStatus.SEALED,
            BundleStatus.VERIFICATION_FAILED,
        )
        message = (
            f"run {active.run_id} crashed (pid {active.pid} ended without closing it); "
            + (
                f"run `capa finalize {active.run_id}` to recover its data"
                if needs_finalize
                else "its bundle is sealed"
            )
            + note
        )
    with contextlib.suppress(FileNotFoundError):
        (runs_root / ACTIVE_CHECKPOINT).unlink()
    return StaleRun(active.run_id, bundle, marked, message, active.bundle_path if moved else None)
