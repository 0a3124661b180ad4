"""Names and places: the runs root, run ids, and the fixed file names inside a bundle."""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from capa.errors import BundleError

__all__ = [
    "ACTIVE_CHECKPOINT",
    "CATALOG_FILE",
    "CHECKSUMS_FILE",
    "CONFIG_DIR",
    "DEVICE_RECORDS_DIR",
    "EVENTS_FILE",
    "IN_FLIGHT_SUFFIX",
    "MANIFEST_FILE",
    "RUNS_ROOT_ENV",
    "RUN_ID_PATTERN",
    "RUN_LOG_FILE",
    "SAMPLES_DIR",
    "SCALARS_STEM",
    "VIDEO_DIR",
    "bundle_dir",
    "check_run_id",
    "new_run_id",
    "resolve_runs_root",
    "safe_component",
]

RUNS_ROOT_ENV: Final = "CAPA_RUNS_ROOT"
MANIFEST_FILE: Final = "manifest.json"
CHECKSUMS_FILE: Final = "manifest.sha256"
EVENTS_FILE: Final = "events.sqlite"
RUN_LOG_FILE: Final = "run.log"
CONFIG_DIR: Final = "config"
DEVICE_RECORDS_DIR: Final = "device_records"
VIDEO_DIR: Final = "video"
SCALARS_STEM: Final = "scalars"
SAMPLES_DIR: Final = "samples"
"""Wide tables of hardware-clocked devices: ``samples/<device>/part-NNNNN.parquet``."""
IN_FLIGHT_SUFFIX: Final = ".in-flight.arrows"
CATALOG_FILE: Final = "runs.sqlite"
ACTIVE_CHECKPOINT: Final = ".runtime-active.json"

RUN_ID_PATTERN: Final = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{4,}$")
"""``20260524T143200-7f3a``: UTC start time to the second, then random hex."""

# Names of device-record families and cameras become file names: keep them boring.
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def resolve_runs_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The runs root: ``--runs-root`` > ``$CAPA_RUNS_ROOT`` > ``./runs`` (seed 000)."""
    if cli_value is not None and str(cli_value) != "":
        return Path(cli_value).expanduser()
    env = os.environ.get(RUNS_ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.cwd() / "runs"


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC start time plus four random hex digits."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it can name a bundle directory, else raise :class:`BundleError`.

    Only the shape matters for safety (no path separators, no ``..``); ids that do not
    follow the generated pattern are accepted when they are plain names, so bundles made by
    other tools can still be finalized.
    """
    if not _SAFE_COMPONENT.match(run_id) or run_id in {".", ".."}:
        raise BundleError(f"run id {run_id!r} is not a valid bundle directory name")
    return run_id


def safe_component(name: str, what: str) -> str:
    """Return ``name`` if it is usable as one path component, else raise BundleError."""
    if not _SAFE_COMPONENT.match(name) or name.endswith(IN_FLIGHT_SUFFIX):
        raise BundleError(
            f"{what} name {name!r} cannot be used as a file name "
            "(letters, digits, '_', '-', '.'; at most 128 characters)"
        )
    return name


def bundle_dir(runs_root: Path, run_id: str) -> Path:
    """Directory of run ``run_id`` under ``runs_root``."""
    return runs_root / check_run_id(run_id)
