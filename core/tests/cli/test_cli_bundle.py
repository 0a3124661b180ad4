"""``capa finalize`` and ``capa catalog``: output and the exit codes of seed 001."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capa import ScalarRows
from capa.bundle.manifest import BundleStatus, RunStatus
from capa.bundle.schema import scalar_batch
from capa.bundle.writer import BundleWriter
from capa.cli import catalog as catalog_cli
from capa.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def record(
    root: Path,
    run_id: str,
    *,
    finalize: bool = True,
    status: str = "completed",
    journals: bool = False,
    **fields: object,
) -> Path:
    """A run of 30 scalar rows; ``journals``: the writer leaves its tables to finalize
    (complete journals, no Parquet: what a version-1 writer left)."""
    from capa.bundle.files import BundleFiles

    writer = BundleWriter.open(root, run_id=run_id, flush_interval_s=0.05, manifest_fields=fields)
    for i in range(3):
        t = list(range(i * 10, i * 10 + 10))
        writer.submit(ScalarRows(scalar_batch(t, "tc1", [float(v) for v in t])))
    original = BundleFiles.close

    def close_leaving_journals(self: BundleFiles) -> list[BaseException]:
        self.release_tables()
        return original(self)

    if journals:
        BundleFiles.close = close_leaving_journals  # type: ignore[method-assign]
    try:
        writer.close(status, finalize=finalize)
    finally:
        BundleFiles.close = original  # type: ignore[method-assign]
    return writer.bundle


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


A = "20260101T000000-aaaa"
B = "20260102T000000-bbbb"


def test_finalize_prints_what_it_did_and_is_idempotent(root, capsys):
    record(root, A, finalize=False)
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 0
    # The writer closed scalars.parquet itself (schema v2): finalize only seals.
    assert "1 file(s) already final" in out
    assert "scalars.in-flight" not in out
    assert "bundle_status:    sealed" in out
    assert "integrity_status: ok" in out
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 0
    assert "already sealed" in out


def test_finalize_uses_capa_runs_root(root, capsys, monkeypatch):
    record(root, A, finalize=False)
    monkeypatch.setenv("CAPA_RUNS_ROOT", str(root))
    assert run_cli(capsys, "finalize", A)[0] == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-bundle", "no bundle directory"),
        ("no-manifest", "manifest missing"),
        ("bad-json", "not valid JSON"),
        ("unknown-version", "unknown bundle_schema_version 3"),
    ],
)
def test_finalize_exit_2_for_missing_or_malformed(root, capsys, damage, message):
    bundle = record(root, A, finalize=False)
    manifest = bundle / "manifest.json"
    if damage == "no-bundle":
        args = ["finalize", "20991231T000000-0000"]
    else:
        args = ["finalize", A]
        if damage == "no-manifest":
            manifest.unlink()
        elif damage == "bad-json":
            manifest.write_text("{")
        else:
            data = json.loads(manifest.read_text())
            data["bundle_schema_version"] = 3
            manifest.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, *args, "--runs-root", str(root))
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_finalize_exit_3_on_finalize_error(root, capsys):
    bundle = record(root, A, finalize=False)
    (bundle / "events.sqlite").write_bytes(b"garbage" * 100)
    for side in ("events.sqlite-wal", "events.sqlite-shm"):
        (bundle / side).unlink(missing_ok=True)
    code, _, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "events.sqlite" in err


def test_finalize_exit_3_when_a_sealed_bundle_was_edited(root, capsys):
    bundle = record(root, A)
    (bundle / "run.log").write_text("rewritten history\n")
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "changed: run.log" in out


def test_catalog_list_table_json_and_filters(root, capsys):
    record(root, A, operator={"id": "ada"})
    record(root, B, status="aborted")
    code, out, _ = run_cli(capsys, "catalog", "list", "--runs-root", str(root))
    assert code == 0
    assert A in out
    assert B in out
    assert "ada" in out
    code, out, _ = run_cli(
        capsys, "catalog", "list", "--runs-root", str(root), "--run-status", "aborted", "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [r["run_id"] for r in rows] == [B]
    assert rows[0]["bundle"] == str(root / B)
    code, out, _ = run_cli(
        capsys, "catalog", "list", "--runs-root", str(root), "--bundle-status", "open", "--json"
    )
    assert json.loads(out) == []
    # every run started just now, so a --since in the past keeps both, one in 2999 none
    code, out, _ = run_cli(
        capsys, "catalog", "list", "--runs-root", str(root), "--since", "2000-01-01", "--json"
    )
    assert len(json.loads(out)) == 2
    code, out, _ = run_cli(
        capsys, "catalog", "list", "--runs-root", str(root), "--since", "2999-01-01", "--json"
    )
    assert json.loads(out) == []


def test_catalog_list_without_catalog_still_exits_0(root, capsys):
    root.mkdir()
    code, out, err = run_cli(capsys, "catalog", "list", "--runs-root", str(root))
    assert code == 0
    assert "no runs" in out
    assert "no catalog" in err


def test_catalog_verify_exit_codes(root, capsys):
    a = record(root, A)
    record(root, B)
    assert run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))[0] == 0
    code, out, _ = run_cli(capsys, "catalog", "verify", "--all", "--runs-root", str(root))
    assert code == 0
    assert f"{A}  ok" in out

    # neither or both: usage error 64
    code, _, err = run_cli(capsys, "catalog", "verify", "--runs-root", str(root))
    assert code == 64
    assert "RUN_ID or --all" in err
    assert run_cli(capsys, "catalog", "verify", A, "--all", "--runs-root", str(root))[0] == 64

    # not in the catalog: 2
    code, _, err = run_cli(
        capsys, "catalog", "verify", "20991231T000000-0000", "--runs-root", str(root)
    )
    assert code == 2
    assert "not in the catalog" in err

    # an edited file: 3, naming the file
    parquet = a / "scalars.parquet"
    data = bytearray(parquet.read_bytes())
    data[20] ^= 1
    parquet.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))
    assert code == 3
    assert "mismatch" in out
    assert "scalars.parquet" in out
    code, out, _ = run_cli(capsys, "catalog", "verify", "--all", "--runs-root", str(root))
    assert code == 3
    assert f"{B}  ok" in out


def test_catalog_verify_extra_file_is_partial(root, capsys):
    bundle = record(root, A)
    (bundle / "notes.txt").write_text("added after sealing")
    code, out, _ = run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))
    assert code == 3
    assert "partial" in out
    assert "notes.txt" in out


def test_catalog_verify_unsealed_and_missing_catalog(root, capsys):
    code, _, err = run_cli(capsys, "catalog", "verify", "--all", "--runs-root", str(root))
    assert code == 2
    assert "no catalog" in err
    record(root, A, finalize=False)
    code, out, _ = run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))
    assert code == 2
    assert f"capa finalize {A}" in out


def test_catalog_rebuild(root, capsys):
    record(root, A)
    record(root, B, finalize=False)
    (root / "runs.sqlite").unlink()
    for side in ("runs.sqlite-wal", "runs.sqlite-shm"):
        (root / side).unlink(missing_ok=True)
    code, out, _ = run_cli(capsys, "catalog", "rebuild", "--runs-root", str(root))
    assert code == 0
    assert "indexed 2 run(s)" in out
    code, out, _ = run_cli(capsys, "catalog", "list", "--runs-root", str(root), "--json")
    rows = {r["run_id"]: r for r in json.loads(out)}
    assert rows[A]["bundle_status"] == "sealed"
    assert rows[B]["bundle_status"] == "open"


def test_status_choices_match_the_manifest_enums():
    assert tuple(s.value for s in RunStatus) == catalog_cli.RUN_STATUSES
    assert tuple(s.value for s in BundleStatus) == catalog_cli.BUNDLE_STATUSES


def test_real_process_exit_codes(root):
    record(root, A, finalize=False)
    entry = "from capa.cli.main import main; main()"
    ok = subprocess.run(
        [sys.executable, "-c", entry, "finalize", A, "--runs-root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        [sys.executable, "-c", entry, "catalog", "verify", "--runs-root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 64


def test_finalize_refuses_a_run_that_is_still_recording(root, capsys):
    writer = BundleWriter.open(root, run_id=A, flush_interval_s=0.05)
    try:
        code, _, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
        assert code == 2
        assert "still recording" in err
        assert (root / A / "scalars.in-flight.arrows").exists()
    finally:
        writer.close()


def test_catalog_verify_reports_a_bundle_finalize_found_incomplete(root, capsys):
    """Checksums that match do not make a bundle whose manifest says it failed ok."""
    bundle = record(root, A, finalize=False, journals=True)
    stream = bundle / "scalars.in-flight.arrows"
    data = stream.read_bytes()
    stream.write_bytes(data[: len(data) - 8 - 100])  # a torn tail: rows the writer wrote
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3, out
    assert "verification_failed" in out
    code, out, _ = run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))
    assert code == 3, out
    # The reason, not a manifest.json that merely looks edited (its only change since the
    # checksums is finalize's verdict).
    assert out.strip() == (
        f"{A}  verification_failed (integrity partial); "
        "accounting: scalars: the file holds 20 rows, the writer wrote 30"
    )
    # The same bundle in a --all sweep, next to a good one.
    record(root, B)
    code, out, _ = run_cli(capsys, "catalog", "verify", "--all", "--runs-root", str(root))
    assert code == 3
    assert f"{B}  ok" in out
    assert f"{A}  verification_failed" in out


def test_catalog_verify_still_sees_a_failed_bundles_manifest_edited(root, capsys):
    bundle = record(root, A, finalize=False, journals=True)
    stream = bundle / "scalars.in-flight.arrows"
    stream.write_bytes(stream.read_bytes()[:-108])
    assert run_cli(capsys, "finalize", A, "--runs-root", str(root))[0] == 3
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"tags": []', '"tags": ["edited"]'))
    code, out, _ = run_cli(capsys, "catalog", "verify", A, "--runs-root", str(root))
    assert code == 3
    assert "verification_failed (integrity partial)" in out
    assert "mismatch; changed: manifest.json" in out
