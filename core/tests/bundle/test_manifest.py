import json
from itertools import product

import pytest

from capa.bundle.manifest import (
    BUNDLE_SCHEMA_VERSION,
    BundleStatus,
    IntegrityStatus,
    RunStatus,
    check_combination,
    new_manifest,
    read_manifest,
    write_manifest,
)
from capa.errors import BundleError

LEGAL = {(r, BundleStatus.OPEN, IntegrityStatus.UNKNOWN) for r in RunStatus} | {
    (r, b, i)
    for r in (RunStatus.COMPLETED, RunStatus.ABORTED, RunStatus.CRASHED)
    for b, i in (
        (BundleStatus.FINALIZING, IntegrityStatus.UNKNOWN),
        (BundleStatus.SEALED, IntegrityStatus.OK),
        (BundleStatus.VERIFICATION_FAILED, IntegrityStatus.MISMATCH),
        (BundleStatus.VERIFICATION_FAILED, IntegrityStatus.PARTIAL),
    )
}


@pytest.mark.parametrize("combo", list(product(RunStatus, BundleStatus, IntegrityStatus)))
def test_status_combinations(combo):
    if combo in LEGAL:
        check_combination(*combo)
    else:
        with pytest.raises(BundleError, match="illegal status combination"):
            check_combination(*combo)


def test_new_manifest_has_every_spec_field():
    m = new_manifest("20260524T143200-7f3a", "2026-05-24T14:32:00+00:00", {"tags": ["x"]})
    data = json.loads(m.to_json_bytes())
    for key in [
        "run_id",
        "bundle_schema_version",
        "started_utc",
        "ended_utc",
        "run_status",
        "bundle_status",
        "integrity",
        "exit_reason",
        "operator",
        "sample",
        "procedure",
        "tags",
        "custom",
        "capa",
        "python",
        "platform",
        "plugins",
        "recording",
        "counts",
        "queue_health",
        "cameras",
    ]:
        assert key in data
    assert data["integrity"] == {"status": "unknown", "algorithm": "sha256"}
    assert (data["run_status"], data["bundle_status"]) == ("running", "open")
    assert data["capa"]["version"]


def test_writer_managed_fields_cannot_be_supplied():
    with pytest.raises(BundleError, match="managed by the bundle writer"):
        new_manifest("r", "t", {"run_status": "completed"})
    with pytest.raises(BundleError, match="tags"):
        new_manifest("r", "t", {"tags": "not-a-list"})


def test_transitions_follow_the_state_machines():
    m = new_manifest("r", "t")
    done = m.transition(run_status=RunStatus.COMPLETED)
    assert done.bundle_status is BundleStatus.OPEN
    with pytest.raises(BundleError, match="run_status cannot change from completed"):
        done.transition(run_status=RunStatus.CRASHED)
    with pytest.raises(BundleError, match="bundle_status cannot change from open to sealed"):
        done.transition(bundle_status=BundleStatus.SEALED, integrity_status=IntegrityStatus.OK)
    with pytest.raises(BundleError, match="illegal status combination"):
        m.transition(bundle_status=BundleStatus.FINALIZING)  # a running run cannot finalize
    fin = done.transition(bundle_status=BundleStatus.FINALIZING)
    sealed = fin.transition(bundle_status=BundleStatus.SEALED, integrity_status="ok")
    with pytest.raises(BundleError, match="cannot change from sealed to open"):
        sealed.transition(bundle_status=BundleStatus.OPEN)
    with pytest.raises(BundleError, match="illegal"):
        fin.transition(bundle_status=BundleStatus.SEALED, integrity_status="mismatch")


def test_roundtrip_and_atomic_write(tmp_path):
    m = new_manifest("r", "t", {"custom": {"a": 1}})
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "manifest missing"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"bundle_schema_version": 99, "run_id": "r"}', "unknown bundle_schema_version 99"),
        (b'{"run_id": "r"}', "unknown bundle_schema_version None"),
        (b'{"bundle_schema_version": 1, "run_id": "r"}', "started_utc"),
    ],
)
def test_bad_manifests_are_refused_naming_the_file(tmp_path, content, message):
    if content is not None:
        (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(BundleError, match=message) as info:
        read_manifest(tmp_path)
    assert "manifest.json" in str(info.value)


def test_illegal_combination_on_disk_is_malformed(tmp_path):
    data = json.loads(new_manifest("r", "t").to_json_bytes())
    data["bundle_status"] = "sealed"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="illegal status combination"):
        read_manifest(tmp_path)


def test_missing_bundle_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        read_manifest(tmp_path / "nope")
    assert BUNDLE_SCHEMA_VERSION == 2
