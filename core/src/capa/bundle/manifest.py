"""``manifest.json``: the bundle's index card and source of truth, and its status rules.

Three status fields describe a bundle (ARCHITECTURE.md 6, seed 001):

- ``run_status``: ``running`` → ``completed`` | ``aborted`` | ``crashed`` (terminal);
- ``bundle_status``: ``open`` → ``finalizing`` → ``sealed`` | ``verification_failed``;
- ``integrity.status``: ``unknown`` until finalize checked ``manifest.sha256``, then
  ``ok`` (sealed) or ``mismatch`` / ``partial`` (verification_failed).

Only these combinations exist on disk: an ``open`` bundle may carry any run status (a run
that ended but was not finalized yet, or one marked ``crashed`` by recovery) with integrity
``unknown``; ``finalizing`` needs a terminal run and integrity ``unknown``; ``sealed`` needs
a terminal run and integrity ``ok``; ``verification_failed`` needs a terminal run and
integrity ``mismatch`` or ``partial``. :meth:`Manifest.transition` refuses anything else,
and a manifest on disk that breaks the rules is reported as malformed.

The file is always replaced atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import enum
import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.paths import MANIFEST_FILE
from capa.errors import BundleError

if TYPE_CHECKING:
    from capa.clock import RunClock

__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "BundleStatus",
    "Integrity",
    "IntegrityStatus",
    "Manifest",
    "RunStatus",
    "check_combination",
    "new_manifest",
    "read_manifest",
    "write_manifest",
]

BUNDLE_SCHEMA_VERSION: Final = 1
"""Layout version this capa writes and reads; any other version is refused."""


class RunStatus(enum.StrEnum):
    """How the run itself went."""

    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"
    CRASHED = "crashed"


class BundleStatus(enum.StrEnum):
    """How far the bundle's files got towards being sealed."""

    OPEN = "open"
    FINALIZING = "finalizing"
    SEALED = "sealed"
    VERIFICATION_FAILED = "verification_failed"


class IntegrityStatus(enum.StrEnum):
    """Result of checking the files against ``manifest.sha256``."""

    UNKNOWN = "unknown"
    OK = "ok"
    MISMATCH = "mismatch"
    PARTIAL = "partial"


_ALLOWED: Final[dict[BundleStatus, tuple[frozenset[RunStatus], frozenset[IntegrityStatus]]]] = {
    BundleStatus.OPEN: (frozenset(RunStatus), frozenset({IntegrityStatus.UNKNOWN})),
    BundleStatus.FINALIZING: (
        frozenset(RunStatus) - {RunStatus.RUNNING},
        frozenset({IntegrityStatus.UNKNOWN}),
    ),
    BundleStatus.SEALED: (
        frozenset(RunStatus) - {RunStatus.RUNNING},
        frozenset({IntegrityStatus.OK}),
    ),
    BundleStatus.VERIFICATION_FAILED: (
        frozenset(RunStatus) - {RunStatus.RUNNING},
        frozenset({IntegrityStatus.MISMATCH, IntegrityStatus.PARTIAL}),
    ),
}

_BUNDLE_NEXT: Final[dict[BundleStatus, frozenset[BundleStatus]]] = {
    BundleStatus.OPEN: frozenset({BundleStatus.OPEN, BundleStatus.FINALIZING}),
    BundleStatus.FINALIZING: frozenset(
        {BundleStatus.FINALIZING, BundleStatus.SEALED, BundleStatus.VERIFICATION_FAILED}
    ),
    # A sealed manifest is written just before manifest.sha256 is checked; if the check
    # then disagrees, the bundle is re-labelled verification_failed.
    BundleStatus.SEALED: frozenset({BundleStatus.SEALED, BundleStatus.VERIFICATION_FAILED}),
    BundleStatus.VERIFICATION_FAILED: frozenset({BundleStatus.VERIFICATION_FAILED}),
}


def _combination_problem(
    run: RunStatus, bundle: BundleStatus, integrity: IntegrityStatus
) -> str | None:
    runs, integrities = _ALLOWED[bundle]
    if run in runs and integrity in integrities:
        return None
    return (
        f"illegal status combination run_status={run.value}, "
        f"bundle_status={bundle.value}, integrity.status={integrity.value}"
    )


def check_combination(run: RunStatus, bundle: BundleStatus, integrity: IntegrityStatus) -> None:
    """Raise :class:`BundleError` unless the three statuses may appear together."""
    problem = _combination_problem(run, bundle, integrity)
    if problem:
        raise BundleError(problem)


class Integrity(BaseModel):
    """``integrity`` block: the last verification result and the hash algorithm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: IntegrityStatus = IntegrityStatus.UNKNOWN
    algorithm: str = "sha256"


class Manifest(BaseModel):
    """Every field of ``manifest.json`` (ARCHITECTURE.md 6). Immutable; see :meth:`transition`.

    The open-ended blocks (``operator``, ``sample``, ``plugins``, ``recording``, ...) are
    filled by the runtime from the experiment; ``custom`` is the experiment's own ``custom``
    plus ``finalize_warnings`` when finalize had to drop a torn tail.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    run_id: str
    bundle_schema_version: int = BUNDLE_SCHEMA_VERSION
    started_utc: str
    ended_utc: str | None = None
    run_status: RunStatus = RunStatus.RUNNING
    bundle_status: BundleStatus = BundleStatus.OPEN
    integrity: Integrity = Field(default_factory=Integrity)
    exit_reason: str = ""
    operator: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    procedure: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict)
    capa: dict[str, Any] = Field(default_factory=dict)
    python: str = ""
    platform: str = ""
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    recording: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, Any] = Field(default_factory=dict)
    queue_health: dict[str, Any] = Field(default_factory=dict)
    cameras: list[dict[str, Any]] = Field(default_factory=list)
    clock: dict[str, Any] | None = None
    """The clock anchor: ``utc_at_zero``, ``monotonic_origin_ns``, ``method``
    (:meth:`capa.clock.RunClock.anchor`); absent from older bundles."""

    @model_validator(mode="after")
    def _legal_statuses(self) -> Manifest:
        problem = _combination_problem(self.run_status, self.bundle_status, self.integrity.status)
        if problem:
            raise ValueError(problem)  # pydantic reports it with the file's other errors
        return self

    def transition(
        self,
        *,
        run_status: RunStatus | None = None,
        bundle_status: BundleStatus | None = None,
        integrity_status: IntegrityStatus | None = None,
        **updates: Any,
    ) -> Manifest:
        """A copy with new statuses (checked against the state machines) and fields.

        Raises:
            BundleError: an illegal transition (a terminal run status changing, a bundle
                moving backwards) or an illegal resulting combination.
        """
        run = self.run_status if run_status is None else RunStatus(run_status)
        bundle = self.bundle_status if bundle_status is None else BundleStatus(bundle_status)
        integrity = (
            self.integrity.status if integrity_status is None else IntegrityStatus(integrity_status)
        )
        if self.run_status is not RunStatus.RUNNING and run is not self.run_status:
            raise BundleError(
                f"run_status cannot change from {self.run_status.value} to {run.value}"
            )
        if bundle not in _BUNDLE_NEXT[self.bundle_status]:
            raise BundleError(
                f"bundle_status cannot change from {self.bundle_status.value} to {bundle.value}"
            )
        check_combination(run, bundle, integrity)
        data = self.model_dump()
        data.update(updates)
        data.update(
            run_status=run,
            bundle_status=bundle,
            integrity={"status": integrity, "algorithm": self.integrity.algorithm},
        )
        return Manifest.model_validate(data)

    def to_json_bytes(self) -> bytes:
        """The manifest as written to disk: indented JSON, one trailing newline."""
        text = json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")


def new_manifest(
    run_id: str,
    started_utc: str,
    fields: dict[str, Any] | None = None,
    *,
    clock: RunClock | None = None,
) -> Manifest:
    """A manifest for a run that is starting (``running`` / ``open`` / ``unknown``).

    ``fields`` supplies the runtime's blocks (operator, sample, procedure, tags, custom,
    plugins, recording, cameras, and entries of the ``capa`` block such as
    ``runtime_version``); capa's version, Python and platform are filled in here, and
    the ``clock`` anchor from the run's ``clock``.
    """
    from capa import __version__

    base: dict[str, Any] = {
        "run_id": run_id,
        "started_utc": started_utc,
        "capa": {"version": __version__},
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{sys.platform} {platform.machine()} {platform.release()}".strip(),
    }
    if clock is not None:
        base["clock"] = clock.anchor()
    extra = dict(fields or {})
    reserved = {"run_id", "bundle_schema_version", "run_status", "bundle_status", "integrity"}
    clash = sorted(reserved & extra.keys())
    if clash:
        raise BundleError(f"manifest fields {clash} are managed by the bundle writer")
    # The runtime adds to the capa block (``runtime_version``); the version stays ours.
    capa_extra = extra.pop("capa", None)
    if isinstance(capa_extra, dict):
        base["capa"] = {**capa_extra, "version": __version__}
    base.update(extra)
    try:
        return Manifest.model_validate(base)
    except ValidationError as exc:
        raise BundleError(f"manifest fields are invalid: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def read_manifest(bundle: Path) -> Manifest:
    """Load and check ``manifest.json`` of ``bundle``.

    Raises:
        BundleError: the bundle directory or manifest is missing, not JSON, of an unknown
            ``bundle_schema_version``, or breaks the schema or the status rules (exit 2).
    """
    if not bundle.is_dir():
        raise BundleError(f"bundle directory {bundle} does not exist")
    path = bundle / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: manifest missing") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read manifest: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: manifest is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path}: manifest must be a JSON object")
    version = data.get("bundle_schema_version")
    if version != BUNDLE_SCHEMA_VERSION or isinstance(version, bool):
        raise BundleError(
            f"{path}: unknown bundle_schema_version {version!r} "
            f"(this capa reads version {BUNDLE_SCHEMA_VERSION})"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{path}: malformed manifest: {_first_error(exc)}") from exc


def write_manifest(bundle: Path, manifest: Manifest) -> None:
    """Atomically replace ``manifest.json`` of ``bundle``."""
    atomic_write_bytes(bundle / MANIFEST_FILE, manifest.to_json_bytes())
