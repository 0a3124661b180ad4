"""Sealed-once bundles anchored outside themselves (issue 19), and catalog self-repair.

Each attack is the one the issue reproduced: laundering by deleting manifest.sha256 and
finalizing again, and consistent tampering (a file and its manifest.sha256 line).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from capa.bundle.catalog import Catalog

from .test_cli_bundle import A, B, record, run_cli


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def retamper(bundle: Path, rel: str, data: bytes) -> None:
    """Replace ``rel`` and rewrite its line in manifest.sha256 to match (consistently)."""
    (bundle / rel).write_bytes(data)
    listing = bundle / "manifest.sha256"
    lines = listing.read_text().splitlines(keepends=True)
    digest = hashlib.sha256(data).hexdigest()
    out = [f"{digest}  {rel}\n" if line.endswith(f"  {rel}\n") else line for line in lines]
    assert out != lines, f"{rel} not listed"
    listing.write_text("".join(out))


def _scalars_changed(bundle: Path) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(bundle / "scalars.parquet")
    i = table.schema.get_field_index("value")
    table = table.set_column(i, "value", pc.add(table.column("value"), pa.scalar(1.0)))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


VARIANTS = {
    "run.log": lambda b: (b / "run.log").read_bytes() + b'{"event": "forged"}\n',
    "manifest.json": lambda b: (
        (b / "manifest.json").read_bytes().replace(b'"completed"', b'"aborted"')
    ),
    "scalars.parquet": _scalars_changed,
    "events.sqlite": lambda b: (b / "events.sqlite").read_bytes()[:-1] + b"\x01",
}


def test_deleting_a_file_and_its_line_is_a_mismatch(root, capsys):
    bundle = record(root, A)
    (bundle / "run.log").unlink()
    listing = bundle / "manifest.sha256"
    listing.write_text(
        "".join(x for x in listing.read_text().splitlines(keepends=True) if "  run.log" not in x)
    )
    code, out = verify(capsys, root, A)
    assert code == 3, out
    assert "manifest.sha256 is not what was sealed" in out


def verify(capsys, root: Path, *args: str) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "catalog", "verify", *args, "--runs-root", str(root))
    return code, out + err


def test_seal_is_journaled_and_in_the_catalog(root):
    bundle = record(root, A)
    lines = (root / "seals.jsonl").read_text().splitlines()
    assert len(lines) == 1
    seal = json.loads(lines[0])
    digest = "sha256:" + hashlib.sha256((bundle / "manifest.sha256").read_bytes()).hexdigest()
    assert seal["run_id"] == A
    assert seal["bundle_digest"] == digest
    assert seal["signature"] is None
    assert Catalog(root, create=False).get(A).bundle_digest == digest


@pytest.mark.parametrize("rel", sorted(VARIANTS))
def test_consistent_tampering_is_a_mismatch(root, capsys, rel):
    bundle = record(root, A)
    assert verify(capsys, root, A)[0] == 0
    retamper(bundle, rel, VARIANTS[rel](bundle))
    from capa.bundle.integrity import verify_bundle

    assert verify_bundle(bundle).ok  # its own list agrees: only the anchor can tell
    code, out = verify(capsys, root, A)
    assert code == 3, out
    assert "manifest.sha256 is not what was sealed" in out


def test_deleting_manifest_sha256_cannot_be_laundered_by_finalize(root, capsys):
    bundle = record(root, A)
    (bundle / "run.log").write_bytes((bundle / "run.log").read_bytes() + b"appended\n")
    (bundle / "manifest.sha256").unlink()
    code, out = verify(capsys, root, A)
    assert code == 3, out  # not "not sealed" (2): the journal says it was
    assert "sealed, but" in out
    code, out, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "already sealed" in err
    assert len(err.strip().splitlines()) == 1
    assert not (bundle / "manifest.sha256").exists()  # nothing resealed
    assert verify(capsys, root, A)[0] == 3


def test_reseal_refused_even_with_manifest_reset_and_journal_deleted(root, capsys):
    bundle = record(root, A)
    (bundle / "manifest.sha256").unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["bundle_status"] = "finalizing"
    manifest["integrity"]["status"] = "unknown"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (root / "seals.jsonl").unlink()  # the catalog still holds the digest
    code, _, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "already sealed (catalog digest sha256:" in err


def test_rebuild_takes_digests_from_the_journal_not_the_bundle(root, capsys):
    bundle = record(root, A)
    record(root, B)
    retamper(bundle, "run.log", b"forged\n")
    (root / "runs.sqlite").unlink()
    for side in ("runs.sqlite-wal", "runs.sqlite-shm"):
        (root / side).unlink(missing_ok=True)
    assert run_cli(capsys, "catalog", "rebuild", "--runs-root", str(root))[0] == 0
    code, out = verify(capsys, root, "--all")
    assert code == 3
    assert f"{B}  ok" in out
    assert "manifest.sha256 is not what was sealed" in out


def test_old_catalog_gains_the_digest_column(root, capsys):
    record(root, A)
    conn = sqlite3.connect(root / "runs.sqlite")
    with conn:
        conn.execute("ALTER TABLE runs DROP COLUMN bundle_digest")  # a version-1 catalog
    conn.close()
    code, out, _ = run_cli(capsys, "catalog", "list", "--runs-root", str(root), "--json")
    assert code == 0
    assert json.loads(out)[0]["bundle_digest"] is None  # migrated; row kept
    assert run_cli(capsys, "catalog", "rebuild", "--runs-root", str(root))[0] == 0
    assert Catalog(root, create=False).get(A).bundle_digest.startswith("sha256:")


# ------------------------------------------------------------------ signatures
@pytest.fixture
def key(tmp_path, capsys) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    path = tmp_path / "keys" / "rig.key"
    path.parent.mkdir()
    code, out, _ = run_cli(capsys, "catalog", "keygen", str(path))
    assert code == 0
    assert "key id:      sha256:" in out
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path, path.with_name("rig.key.pub")


def test_signed_seal_verifies_and_forgery_without_the_key_fails(root, capsys, key, monkeypatch):
    private, public = key
    monkeypatch.setenv("CAPA_SEAL_KEY", str(private))
    bundle = record(root, A)
    monkeypatch.delenv("CAPA_SEAL_KEY")
    code, out = verify(capsys, root, A, "--require-signature", "--public-key", str(public))
    assert code == 0, out
    assert "signed" in out
    # An attacker rewrites the file, its line, the journal and the catalog, but cannot sign.
    retamper(bundle, "run.log", b"forged\n")
    new = "sha256:" + hashlib.sha256((bundle / "manifest.sha256").read_bytes()).hexdigest()
    seals = root / "seals.jsonl"
    old = json.loads(seals.read_text())["bundle_digest"]
    seals.write_text(seals.read_text().replace(old, new))
    conn = sqlite3.connect(root / "runs.sqlite")
    with conn:
        conn.execute("UPDATE runs SET bundle_digest = ?", (new,))
    conn.close()
    assert verify(capsys, root, A)[0] == 0  # without signatures nothing is left to tell
    code, out = verify(capsys, root, A, "--require-signature", "--public-key", str(public))
    assert code == 3
    assert "no valid rig signature" in out


def test_require_signature_on_unsigned_seal_and_without_key(root, capsys, key, monkeypatch):
    _, public = key
    record(root, A)
    code, out = verify(capsys, root, A, "--require-signature", "--public-key", str(public))
    assert code == 3
    assert "no valid rig signature" in out
    code, out = verify(capsys, root, A, "--require-signature")
    assert code == 2
    assert "--require-signature needs --public-key" in out
    monkeypatch.setenv("CAPA_SEAL_PUBLIC_KEY", str(public))
    assert verify(capsys, root, A, "--require-signature")[0] == 3


def test_broken_signing_key_stops_finalize_before_any_change(root, capsys, tmp_path, monkeypatch):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    record(root, A, finalize=False)
    monkeypatch.setenv("CAPA_SEAL_KEY", str(bad))
    code, _, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "cannot load the rig signing key" in err
    assert not (root / A / "manifest.sha256").exists()


def test_keygen_refuses_to_overwrite(capsys, key):
    private, _ = key
    code, _, err = run_cli(capsys, "catalog", "keygen", str(private))
    assert code == 2
    assert "refusing to overwrite" in err


# ------------------------------------------------------------------ self-repair
def _corrupt(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif kind == "garbage-header":
        path.write_bytes(b"garbage!" * 4 + data[32:])
    elif kind == "zeroed-pages":
        path.write_bytes(data[:4096] + b"\0" * (len(data) - 4096))
    elif kind == "not-sqlite":
        path.write_bytes(b"hello, I am a text file\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage-page":
        path.write_bytes(data[:4096] + bytes(range(256)) * 16 + data[8192:])
    elif kind == "directory":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("not a database")
    elif kind == "wrong-schema":
        path.unlink()
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("CREATE TABLE runs (id INTEGER, what TEXT)")
        conn.close()


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "garbage-header",
        "zeroed-pages",
        "garbage-page",
        "not-sqlite",
        "empty",
        "wrong-schema",
        "directory",
    ],
)
def test_rebuild_replaces_an_unreadable_catalog_and_keeps_it_aside(root, capsys, kind):
    for i in range(8):  # with long tags: rows on more than one page
        record(root, f"20260101T0000{i:02d}-aaaa", tags=["x" * 2000])
    path = root / "runs.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for side in ("runs.sqlite-wal", "runs.sqlite-shm"):
        (root / side).unlink(missing_ok=True)
    before = path.read_bytes()
    _corrupt(path, kind)
    damaged = path.read_bytes() if path.is_file() else None
    code, out, err = run_cli(capsys, "catalog", "rebuild", "--runs-root", str(root))
    assert code == 0, err
    if kind != "empty":  # an empty file is a valid empty database to SQLite
        assert "kept it as" in out
        (aside,) = [
            p
            for p in root.glob("runs.sqlite.corrupt-*")
            if p.suffix != ".sqlite-wal" and not p.name.endswith(("-wal", "-shm"))
        ]
        assert (aside.read_bytes() if aside.is_file() else None) == damaged
    assert "indexed 8 run(s)" in out
    code, out, _ = run_cli(capsys, "catalog", "list", "--runs-root", str(root), "--json")
    assert code == 0
    assert len(json.loads(out)) == 8
    assert before  # the original was a real catalog
    assert verify(capsys, root, "--all")[0] == 0  # digests back from the journal


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tags_json", "not json"),
        ("summary_json", "[1, 2"),
        ("tags_json", '{"a": 1}'),
        ("started_utc", b"\x00\x01"),  # TEXT affinity keeps only blobs as non-text
        ("operator", b"\xff\x00"),
    ],
)
def test_list_shows_a_bad_row_with_a_warning_and_the_rest(root, capsys, column, value):
    record(root, A)
    record(root, B)
    conn = sqlite3.connect(root / "runs.sqlite")
    with conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE run_id = ?", (value, A))
    conn.close()
    code, out, err = run_cli(capsys, "catalog", "list", "--runs-root", str(root))
    assert code == 0
    assert A in out
    assert B in out
    assert f"capa: warning: catalog row {A}: {column}" in err
    code, out, _ = run_cli(capsys, "catalog", "list", "--runs-root", str(root), "--json")
    assert code == 0
    assert {r["run_id"] for r in json.loads(out)} == {A, B}


def test_finalize_of_a_consistently_tampered_sealed_bundle_is_exit_3(root, capsys):
    bundle = record(root, A)
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 0, out
    retamper(bundle, "run.log", b"forged\n")
    code, out, _ = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert "seal:             manifest.sha256 is not what was sealed" in out


def test_a_garbled_journal_line_still_forbids_resealing(root, capsys):
    bundle = record(root, A)
    seals = root / "seals.jsonl"
    seals.write_text(seals.read_text().replace('"bundle_digest"', '"bundle_digest', 1))
    (bundle / "manifest.sha256").unlink()
    conn = sqlite3.connect(root / "runs.sqlite")
    with conn:
        conn.execute("UPDATE runs SET bundle_digest = NULL")
    conn.close()
    code, _, err = run_cli(capsys, "finalize", A, "--runs-root", str(root))
    assert code == 3
    assert f"an unreadable line of {seals} names run {A}" in err
