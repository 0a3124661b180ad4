"""Offline verification of Sigstore bundles and PEP 740 attestations (``capa[sigstore]``).

``sigstore`` and ``pypi-attestations`` are imported only inside these functions: they are
an optional extra and heavy. Verification always runs with ``offline=True``, against the
trust root pinned inside the installed ``sigstore`` package — no TUF refresh, no Rekor
lookup, no network at all.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capa.errors import TrustError

__all__ = ["VerifiedArtifact", "parse_identity", "verify_attestation"]


@dataclass(frozen=True, slots=True)
class VerifiedArtifact:
    """An artifact whose signature checked out.

    Attributes:
        kind: ``pep740`` or ``sigstore-bundle`` (what the attestation file was).
        identity: the expected signer identity that the certificate matched.
        sha256: hex sha256 of the artifact.
        predicate_type: the in-toto predicate type the attestation carries.
    """

    kind: str
    identity: str
    sha256: str
    predicate_type: str


def parse_identity(
    publisher: str | None, identity: str | None = None, issuer: str | None = None
) -> tuple[str, Any]:
    """``(label, policy)`` for ``--publisher`` or ``--identity/--issuer``.

    ``publisher`` is ``github:OWNER/REPO/WORKFLOW_FILE`` or ``gitlab:NAMESPACE/PROJECT/
    CI_FILE`` (the last path segment is the workflow file). ``identity`` is a certificate
    SAN (an e-mail or URI) and needs ``issuer``, the OIDC issuer URL.
    """
    _require()
    if publisher and (identity or issuer):
        raise TrustError("give either --publisher or --identity/--issuer, not both")
    if publisher:
        kind, _, rest = publisher.partition(":")
        repo, _, workflow = rest.rpartition("/")
        if kind not in ("github", "gitlab") or repo.count("/") < 1 or not workflow:
            raise TrustError(
                f"--publisher {publisher!r}: expected github:OWNER/REPO/WORKFLOW or "
                "gitlab:NAMESPACE/PROJECT/CI_FILE"
            )
        from pypi_attestations import GitHubPublisher, GitLabPublisher

        policy: Any = (
            GitHubPublisher(repository=repo, workflow=workflow)
            if kind == "github"
            else GitLabPublisher(repository=repo, workflow_filepath=workflow)
        )
        return publisher, policy
    if identity and issuer:
        from sigstore.verify.policy import Identity

        return f"{identity} @ {issuer}", Identity(identity=identity, issuer=issuer)
    raise TrustError("an expected signer is required: --publisher, or --identity with --issuer")


def verify_attestation(
    artifact: Path, attestation: Path, policy: Any, label: str
) -> VerifiedArtifact:
    """Verify ``attestation`` (PEP 740 JSON or a Sigstore bundle) for ``artifact``, offline.

    Raises:
        TrustError: the file is unreadable or malformed, the signature or certificate
            chain is invalid, the signer is not ``policy``, or the attestation was made for
            a different artifact digest.
    """
    _require()
    from pypi_attestations import Attestation, Distribution
    from sigstore.models import Bundle

    # The TUF client logs "loaded in offline mode" at warning level on every call.
    logging.getLogger("sigstore").setLevel(logging.ERROR)
    try:
        text = attestation.read_text(encoding="utf-8")
        if '"mediaType"' in text[:512]:
            kind = "sigstore-bundle"
            att = Attestation.from_bundle(Bundle.from_json(text))
        else:
            kind = "pep740"
            att = Attestation.model_validate_json(text)
        dist = Distribution.from_file(artifact)
    except OSError as exc:
        raise TrustError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except Exception as exc:  # pydantic / sigstore parse errors have no common base
        raise TrustError(
            f"{attestation}: not a PEP 740 attestation or Sigstore bundle: {exc}"
        ) from exc
    try:
        predicate_type, _ = att.verify(policy, dist, offline=True)
    except Exception as exc:
        raise TrustError(
            f"{attestation}: signature verification failed for {artifact.name} "
            f"(expected signer {label}): {exc}"
        ) from exc
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    return VerifiedArtifact(kind, label, sha, predicate_type)


def _require() -> None:
    try:
        import pypi_attestations  # noqa: F401
        import sigstore  # noqa: F401
    except ImportError as exc:
        raise TrustError(
            "verifying attestations needs the optional extra: pip install 'capa[sigstore]'"
        ) from exc
