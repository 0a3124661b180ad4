"""Offline verification of recorded, production-signed attestations (network blocked)."""

from __future__ import annotations

import pytest

from capa.errors import TrustError
from capa.trust.sigstore import parse_identity, verify_attestation

CASES = [
    (
        "pypi_attestation_models-0.0.4a2.tar.gz",
        ".sigstore",
        "sigstore-bundle",
        "github:trailofbits/pypi-attestation-models/release.yml",
    ),
    (
        "gitlab_oidc_project-0.0.3.tar.gz",
        ".publish.attestation",
        "pep740",
        "gitlab:facutuesca/gitlab-oidc-project/.gitlab-ci.yml",
    ),
    (
        "pypi_attestations-0.0.19.tar.gz",
        ".publish.attestation",
        "pep740",
        "github:trailofbits/pypi-attestations/release.yml",
    ),
]


@pytest.mark.parametrize(("artifact", "suffix", "kind", "publisher"), CASES)
def test_right_identity_passes_offline(
    sigstore_fixtures, no_network, artifact, suffix, kind, publisher
):
    label, policy = parse_identity(publisher)
    result = verify_attestation(
        sigstore_fixtures / artifact, sigstore_fixtures / f"{artifact}{suffix}", policy, label
    )
    assert result.kind == kind
    assert result.identity == publisher
    assert result.predicate_type == "https://docs.pypi.org/attestations/publish/v1"
    assert len(result.sha256) == 64


@pytest.mark.parametrize(("artifact", "suffix", "kind", "publisher"), CASES)
def test_wrong_identity_fails(sigstore_fixtures, no_network, artifact, suffix, kind, publisher):
    forge, _, rest = publisher.partition(":")
    wrong = f"{forge}:someone-else/{rest.split('/', 1)[1]}"
    label, policy = parse_identity(wrong)
    with pytest.raises(TrustError, match="signature verification failed"):
        verify_attestation(
            sigstore_fixtures / artifact, sigstore_fixtures / f"{artifact}{suffix}", policy, label
        )


@pytest.mark.parametrize(("artifact", "suffix", "kind", "publisher"), CASES)
def test_wrong_artifact_digest_fails(
    sigstore_fixtures, no_network, tmp_path, artifact, suffix, kind, publisher
):
    # Same file name, one byte different: the attestation's subject digest no longer matches.
    altered = tmp_path / artifact
    data = bytearray((sigstore_fixtures / artifact).read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    label, policy = parse_identity(publisher)
    with pytest.raises(TrustError, match="subject does not match"):
        verify_attestation(altered, sigstore_fixtures / f"{artifact}{suffix}", policy, label)


def test_identity_and_issuer_policy(sigstore_fixtures, no_network):
    artifact = "pypi_attestations-0.0.19.tar.gz"
    ok_id = (
        "https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml"
        "@refs/tags/v0.0.19"
    )
    issuer = "https://token.actions.githubusercontent.com"
    label, policy = parse_identity(None, ok_id, issuer)
    att = sigstore_fixtures / f"{artifact}.publish.attestation"
    assert verify_attestation(sigstore_fixtures / artifact, att, policy, label).identity == label
    label, policy = parse_identity(None, ok_id, "https://accounts.google.com")
    with pytest.raises(TrustError, match="signature verification failed"):
        verify_attestation(sigstore_fixtures / artifact, att, policy, label)


def test_staging_signed_wheel_fails_against_the_production_root(sigstore_fixtures, no_network):
    wheel = "rfc8785-0.1.2-py3-none-any.whl"
    label, policy = parse_identity(None, "william@yossarian.net", "https://github.com/login/oauth")
    with pytest.raises(TrustError, match="signature verification failed"):
        verify_attestation(
            sigstore_fixtures / wheel,
            sigstore_fixtures / f"{wheel}.publish.attestation",
            policy,
            label,
        )


def test_garbage_attestation_is_one_clear_error(sigstore_fixtures, tmp_path, no_network):
    artifact = sigstore_fixtures / "pypi_attestations-0.0.19.tar.gz"
    bad = tmp_path / "bad.attestation"
    bad.write_text("{not json")
    label, policy = parse_identity("github:trailofbits/pypi-attestations/release.yml")
    with pytest.raises(TrustError, match="not a PEP 740 attestation"):
        verify_attestation(artifact, bad, policy, label)


@pytest.mark.parametrize("publisher", ["github:norepo", "bitbucket:a/b/c.yml", "github:a/b/"])
def test_bad_publisher_spec_is_refused(publisher):
    with pytest.raises(TrustError, match="expected github:OWNER/REPO/WORKFLOW"):
        parse_identity(publisher)
