"""Opening a bundle: build it complete in a staging directory, then rename it into place.

A bundle directory never exists without its manifest: :func:`stage_bundle` writes the
space reserve, config files, manifest and event log into a hidden staging directory and
renames it to the bundle's name. :func:`remove_stale_staging` cleans up after a process
killed while opening.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from capa.bundle.atomic import TEMP_PREFIX, fsync_dir
from capa.bundle.configdir import write_config_files
from capa.bundle.events import create_events_db
from capa.bundle.manifest import Manifest, write_manifest
from capa.bundle.paths import EVENTS_FILE
from capa.bundle.space import describe_write_failure, make_reserve
from capa.errors import BundleError

__all__ = ["STALE_STAGING_S", "remove_stale_staging", "stage_bundle"]

# A staging directory older than this was left by a process killed while opening its
# bundle; a younger one may belong to another process opening right now.
STALE_STAGING_S: Final = 600.0


def remove_stale_staging(root: Path) -> None:
    """Delete staging directories of bundles whose opening was interrupted (a kill)."""
    now = time.time()
    for path in root.glob(f"{TEMP_PREFIX}*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(path)
        except OSError as exc:  # someone else's, or already gone: never fail a run on it
            _warn(f"could not remove stale staging directory {path}: {exc}")


def _warn(text: str) -> None:
    import sys

    with contextlib.suppress(OSError, ValueError):  # no stderr left: nowhere to say it
        sys.stderr.write(f"capa: warning: {text}\n")


def stage_bundle(
    root: Path, bundle: Path, configs: Mapping[tuple[str, ...], bytes], manifest: Manifest
) -> None:
    """Create ``bundle`` complete with config, manifest, event log and space reserve.

    Everything is built in a hidden staging directory and renamed into place, so a bundle
    directory never exists without its manifest: a failure here (a disk that is already
    full, a config that cannot be serialised) leaves nothing behind in the runs root.

    Raises:
        BundleError: the files could not be written (the message says when the disk is full).
    """
    staging = root / f"{TEMP_PREFIX}{bundle.name}"
    try:
        if staging.exists():
            shutil.rmtree(staging)  # left by a process killed while opening this run id
        staging.mkdir()
        make_reserve(staging)  # first: no room for the reserve, no run
        write_config_files(staging, configs)
        write_manifest(staging, manifest)
        create_events_db(staging / EVENTS_FILE)
        fsync_dir(staging)
        os.replace(staging, bundle)  # an empty directory at ``bundle`` is replaced
        fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError | sqlite3.Error):
            raise BundleError(
                f"cannot create the run bundle: {describe_write_failure(bundle, exc)}"
            ) from exc
        raise
