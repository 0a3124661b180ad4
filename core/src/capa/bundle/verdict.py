"""What ``capa catalog verify`` adds to the checksums: the verdict finalize recorded.

Checksums prove that the files are the ones sealed; they cannot say that the files hold
the whole run. Finalize checks that too (the accounting of :mod:`capa.bundle.accounting`,
torn tails it had to cut) and, when it fails, marks the bundle ``verification_failed`` in
``manifest.json`` *after* writing ``manifest.sha256``. So such a bundle is not ``ok``
whatever its checksums say, and the one difference between its manifest and the listed
hash is that verdict — which :func:`recorded_verdict` recognises, so that verify reports
the reason instead of an apparently edited ``manifest.json``. A manifest edited in any
other way still shows as changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from capa.bundle.integrity import VerifyResult, parse_checksums
from capa.bundle.manifest import BundleStatus, IntegrityStatus, Manifest, read_manifest
from capa.bundle.paths import CHECKSUMS_FILE, MANIFEST_FILE
from capa.errors import BundleError

__all__ = ["recorded_verdict"]

# Problems quoted per bundle on its one verify line; the manifest holds all of them.
_MAX_PROBLEMS = 3


def recorded_verdict(bundle: Path, result: VerifyResult) -> tuple[list[str], VerifyResult]:
    """Finalize's failed verdict for ``bundle`` (empty if none) and the checksum result.

    Returns the reasons to report (``verification_failed (integrity partial)`` and the
    accounting problems or finalize warnings behind it) and ``result`` with
    ``manifest.json`` taken out of ``changed`` when the verdict is its only change.
    """
    try:
        manifest = read_manifest(bundle)
    except BundleError:
        return [], result  # an unreadable manifest: the checksums already say what changed
    if manifest.bundle_status is not BundleStatus.VERIFICATION_FAILED:
        return [], result
    reasons = [f"verification_failed (integrity {manifest.integrity.status.value})"]
    reasons += _problems(manifest)
    if MANIFEST_FILE in result.changed and _only_the_verdict_changed(bundle, manifest):
        changed = [name for name in result.changed if name != MANIFEST_FILE]
        result = dataclasses.replace(
            result,
            changed=changed,
            checked=result.checked + 1,
            status=_status(result, changed),
        )
    return reasons, result


def _problems(manifest: Manifest) -> list[str]:
    accounting: Any = manifest.counts.get("accounting", {})
    problems = accounting.get("problems", []) if isinstance(accounting, dict) else []
    found = [f"accounting: {p}" for p in problems if isinstance(p, str)]
    if not found:
        warnings = manifest.custom.get("finalize_warnings", [])
        found = [f"finalize: {w}" for w in warnings if isinstance(w, str)]
    if len(found) > _MAX_PROBLEMS:
        found = [*found[:_MAX_PROBLEMS], f"... {len(found) - _MAX_PROBLEMS} more in manifest.json"]
    return found


def _only_the_verdict_changed(bundle: Path, manifest: Manifest) -> bool:
    """Whether ``manifest.json`` is the listed one but for finalize's failed verdict."""
    try:
        listing = (bundle / CHECKSUMS_FILE).read_bytes()
    except OSError:
        return False
    entries, _bad = parse_checksums(listing)
    listed = {digest for name, digest in entries if name == MANIFEST_FILE}
    if len(listed) != 1:
        return False
    data = manifest.model_dump()
    data.update(
        bundle_status=BundleStatus.SEALED,
        integrity={"status": IntegrityStatus.OK, "algorithm": manifest.integrity.algorithm},
    )
    try:
        as_sealed = Manifest.model_validate(data).to_json_bytes()
    except ValueError:  # pydantic's ValidationError: the combination cannot be sealed
        return False
    return hashlib.sha256(as_sealed).hexdigest() in listed


def _status(result: VerifyResult, changed: list[str]) -> IntegrityStatus:
    if changed or result.missing or result.malformed_lines or result.refused:
        return IntegrityStatus.MISMATCH
    if result.extra:
        return IntegrityStatus.PARTIAL
    return IntegrityStatus.OK
