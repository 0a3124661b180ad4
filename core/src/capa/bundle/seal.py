r"""Anchoring a sealed bundle outside itself: the seal journal and the rig signature.

A bundle's ``manifest.sha256`` proves nothing against someone who can rewrite a file *and*
its line in the list. So at seal time capa records the **bundle digest** — the sha256 of
``manifest.sha256``'s bytes — outside the bundle:

- in ``seals.jsonl`` in the runs root, an append-only journal: one JSON object per line,
  ``{"run_id", "bundle_digest", "sealed_utc", "integrity", "signature", "key_id"}``;
- in the catalog (``runs.sqlite`` column ``bundle_digest``), copied from the journal;
- optionally as an Ed25519 **signature** over ``capa-bundle-seal-v1\n<run_id>\n<digest>\n``
  made with the rig key named by ``$CAPA_SEAL_KEY`` (a PKCS#8 PEM private key; ``capa
  catalog keygen`` writes one). Verifying needs only the public key
  (``$CAPA_SEAL_PUBLIC_KEY`` or ``--public-key``).

A bundle is sealed **once**: :func:`refuse_resealing` stops ``finalize`` when the journal
or the catalog already holds a seal for the run, so deleting ``manifest.sha256`` and
finalizing again cannot launder a tampered bundle. ``capa catalog verify`` compares the
bundle's digest with the journal's and the catalog's, and with ``--require-signature``
checks the signature.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from capa.bundle.paths import CHECKSUMS_FILE
from capa.errors import BundleError, FinalizeError

__all__ = [
    "KEY_ENV",
    "PUBLIC_KEY_ENV",
    "SEALS_FILE",
    "SealRecord",
    "bundle_digest",
    "generate_key",
    "read_seals",
    "record_seal",
    "refuse_resealing",
    "seal_message",
    "verify_signature",
]

SEALS_FILE: Final = "seals.jsonl"
KEY_ENV: Final = "CAPA_SEAL_KEY"
"""Path of the rig's Ed25519 private key (PKCS#8 PEM); when set, every seal is signed."""
PUBLIC_KEY_ENV: Final = "CAPA_SEAL_PUBLIC_KEY"
"""Path of the public key ``capa catalog verify --require-signature`` checks against."""
_DOMAIN: Final = b"capa-bundle-seal-v1\n"


@dataclass(frozen=True)
class SealRecord:
    """One line of ``seals.jsonl``.

    Attributes:
        run_id: the run.
        bundle_digest: ``sha256:<hex>`` of ``manifest.sha256`` as sealed.
        sealed_utc: when the seal was recorded.
        integrity: the verification status at seal time (``ok`` normally).
        signature: hex Ed25519 signature of :func:`seal_message`, or ``None``.
        key_id: ``sha256:<hex>`` of the raw public key that signed, or ``None``.
    """

    run_id: str
    bundle_digest: str
    sealed_utc: str
    integrity: str = "ok"
    signature: str | None = None
    key_id: str | None = None


def seal_message(run_id: str, digest: str) -> bytes:
    """The bytes a rig key signs for one seal (domain-separated)."""
    return _DOMAIN + run_id.encode() + b"\n" + digest.encode() + b"\n"


def bundle_digest(bundle: Path) -> str:
    """``sha256:<hex>`` of ``manifest.sha256`` (a regular file, never through a link)."""
    path = bundle / CHECKSUMS_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BundleError(f"{path}: not a regular file")
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def journal_path(runs_root: Path) -> Path:
    """``seals.jsonl`` of a runs root."""
    return runs_root / SEALS_FILE


def read_seals(runs_root: Path) -> tuple[dict[str, list[SealRecord]], list[str]]:
    """Seal records by run id (in journal order) and one line per unreadable journal line."""
    path = journal_path(runs_root)
    records: dict[str, list[SealRecord]] = {}
    problems: list[str] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return records, problems
    except OSError as exc:
        return records, [f"{path}: cannot read: {exc.strerror or exc}"]
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            record = SealRecord(**obj)
            if not isinstance(record.run_id, str) or not isinstance(record.bundle_digest, str):
                raise TypeError("run_id and bundle_digest must be strings")
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}:{number}: unreadable seal record ({exc})")
            continue
        records.setdefault(record.run_id, []).append(record)
    return records, problems


def _append(runs_root: Path, record: SealRecord) -> None:
    line = json.dumps(asdict(record), sort_keys=True, separators=(",", ":")) + "\n"
    path = journal_path(runs_root)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "ab") as f:
        # Two processes sealing at once must not interleave their lines.
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _mentions(runs_root: Path, run_id: str) -> bool:
    try:
        return run_id.encode() in journal_path(runs_root).read_bytes()
    except OSError:
        return True  # an unreadable journal cannot vouch that the run was never sealed


def _catalog_digest(runs_root: Path, run_id: str) -> str | None:
    from capa.bundle.catalog import Catalog

    try:
        row = Catalog(runs_root, create=False).get(run_id)
    except BundleError:
        return None  # no or unusable catalog: the journal is the authority
    return row.bundle_digest if row is not None else None


def refuse_resealing(bundle: Path, run_id: str) -> None:
    """Raise :class:`FinalizeError` (exit 3) if ``run_id`` was ever sealed in this runs root.

    Also loads the signing key when one is configured, so a broken key stops finalize
    before it changes anything.
    """
    runs_root = bundle.parent
    records, problems = read_seals(runs_root)
    if run_id not in records and problems and _mentions(runs_root, run_id):
        raise FinalizeError(
            f"{bundle}: an unreadable line of {journal_path(runs_root)} names run {run_id}; "
            "a bundle is sealed once — inspect the journal and run `capa catalog verify "
            f"{run_id}`"
        )
    earlier = records.get(run_id)
    if earlier:
        first = earlier[0]
        raise FinalizeError(
            f"{bundle}: run {run_id} was already sealed at {first.sealed_utc} "
            f"({first.bundle_digest}, {journal_path(runs_root)}); a bundle is sealed once — "
            "its manifest.sha256 is missing or was replaced, run `capa catalog verify "
            f"{run_id}`"
        )
    digest = _catalog_digest(runs_root, run_id)
    if digest:
        raise FinalizeError(
            f"{bundle}: run {run_id} was already sealed (catalog digest {digest}); a bundle "
            f"is sealed once — run `capa catalog verify {run_id}`"
        )
    _signing_key()


def record_seal(bundle: Path, run_id: str, integrity: str) -> SealRecord:
    """Journal (and sign, if a rig key is configured) the seal just written."""
    digest = bundle_digest(bundle)
    signature = key_id = None
    key = _signing_key()
    if key is not None:
        signature = key.sign(seal_message(run_id, digest)).hex()
        key_id = _key_id(key.public_key())
    record = SealRecord(
        run_id,
        digest,
        datetime.now(UTC).isoformat(timespec="microseconds"),
        integrity,
        signature,
        key_id,
    )
    _append(bundle.parent, record)
    return record


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise BundleError(
            "bundle signing needs the `cryptography` library: install capa[signing]"
        ) from exc
    return serialization, ed25519


def _signing_key() -> Any:
    path = os.environ.get(KEY_ENV, "").strip()
    if not path:
        return None
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise FinalizeError(f"{KEY_ENV}={path}: cannot load the rig signing key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise FinalizeError(f"{KEY_ENV}={path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from a PEM file (``BundleError`` naming the file if not)."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"{path}: cannot load the public key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key")
    return key


def _key_id(public_key: Any) -> str:
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def verify_signature(record: SealRecord, public_key: Any) -> bool:
    """Whether ``record`` carries a valid signature by ``public_key`` over its digest."""
    if not record.signature:
        return False
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(
            bytes.fromhex(record.signature), seal_message(record.run_id, record.bundle_digest)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def generate_key(path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 private key to ``path`` (mode 0600) and ``path.pub``.

    Returns the public key path and the key id. Refuses to overwrite either file.
    """
    serialization, ed25519 = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = path.with_name(path.name + ".pub")
    for target in (path, pub_path):
        if target.exists():
            raise BundleError(f"{target} exists; refusing to overwrite a key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    try:
        pub_path.write_bytes(public)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return pub_path, _key_id(key.public_key())


@dataclass
class AnchorCheck:
    """What the records outside the bundle say about it.

    Attributes:
        problems: reasons the bundle is not what was sealed (each makes verify exit 3).
        notes: information that is not a failure (e.g. no record: sealed before journaling).
        signed: a valid signature by the given public key covers the current digest.
    """

    problems: list[str]
    notes: list[str]
    signed: bool = False


def check_anchors(
    bundle: Path,
    run_id: str,
    *,
    catalog_digest: str | None,
    records: list[SealRecord],
    public_key: Any = None,
    require_signature: bool = False,
) -> AnchorCheck:
    """Compare the bundle's digest with the journal's and the catalog's (and the signature)."""
    out = AnchorCheck([], [])
    recorded = {r.bundle_digest: "seal journal" for r in records}
    if catalog_digest:
        recorded[catalog_digest] = (
            "catalog" if catalog_digest not in recorded else "seal journal and catalog"
        )
    try:
        current: str | None = bundle_digest(bundle)
    except BundleError as exc:
        current = None
        if recorded:
            out.problems.append(f"sealed, but {exc}")
    if not recorded:
        out.notes.append(f"no seal record outside the bundle ({SEALS_FILE} / catalog)")
    if len(recorded) > 1:
        listing = ", ".join(f"{d} ({where})" for d, where in recorded.items())
        out.problems.append(f"the seal records disagree: {listing}")
    for digest, where in recorded.items():
        if current is not None and current != digest:
            out.problems.append(
                f"manifest.sha256 is not what was sealed: digest {current}, {where} says {digest}"
            )
    if public_key is not None and current is not None:
        out.signed = any(
            r.bundle_digest == current and verify_signature(r, public_key) for r in records
        )
    if require_signature and not out.signed:
        out.problems.append("no valid rig signature over the bundle digest")
    return out
