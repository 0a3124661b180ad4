"""Deleting large redundant files off the stop path.

A closed table's journal is as large as the table (hundreds of MB for a wide part), and
deleting a large file can take from milliseconds to seconds (freeing extents, online
discard). It must leave the bundle before it is sealed, but nobody has to wait for the
blocks to be freed: :func:`discard` renames it to ``<runs root>/.capa-trash-<...>`` (one
rename, durable; a plain hidden file, never mistaken for a bundle) and a background thread
deletes it. What a killed process left behind is removed by :func:`sweep` when the next
run opens in that runs root.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Final

from capa.bundle.atomic import fsync_dir

__all__ = ["TRASH_PREFIX", "discard", "drain", "sweep"]

TRASH_PREFIX: Final = ".capa-trash-"

_queue: queue.Queue[Path] = queue.Queue()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_serial = itertools.count()


def discard(path: Path, bundle: Path) -> None:
    """Move ``path`` (a file of ``bundle``) out of the bundle now; delete it soon.

    Falls back to deleting it in place when the trash folder cannot be used.
    """
    name = f"{TRASH_PREFIX}{os.getpid()}-{next(_serial)}-{bundle.name}-{path.name}"
    target = bundle.parent / name
    try:
        os.replace(path, target)
    except OSError:
        path.unlink()
        fsync_dir(path.parent)
        return
    fsync_dir(path.parent)
    fsync_dir(target.parent)
    _start()
    _queue.put(target)


def _start() -> None:
    global _thread  # noqa: PLW0603 - one deleter thread per process, started lazily
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_delete_forever, name="capa-trash", daemon=True)
            _thread.start()


def _delete_forever() -> None:
    while True:
        path = _queue.get()
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The file is redundant (its table is complete elsewhere) and sweep() retries
            # at the next run; say so rather than hide it.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"capa: warning: could not delete {path}: {exc}\n")
        finally:
            _queue.task_done()


def drain() -> None:
    """Wait until every discarded file is deleted (tests, benchmarks, process exit)."""
    _queue.join()


def sweep(runs_root: Path) -> None:
    """Delete what a killed process left in the runs root's trash."""
    mine = f"{TRASH_PREFIX}{os.getpid()}-"
    for entry in sorted(runs_root.glob(f"{TRASH_PREFIX}*")):
        if entry.name.startswith(mine) or not entry.is_file():
            continue  # this process's own (queued right now), or not a file we made
        try:
            entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"capa: warning: could not delete {entry}: {exc}\n")
