import hashlib
import shutil
import subprocess

import pytest

from capa.bundle.integrity import (
    format_checksums,
    parse_checksums,
    verify_bundle,
    write_checksums,
)
from capa.bundle.manifest import IntegrityStatus


@pytest.fixture
def bundle(tmp_path):
    b = tmp_path / "b"
    (b / "config").mkdir(parents=True)
    (b / "manifest.json").write_text("{}")
    (b / "scalars.parquet").write_bytes(b"PAR1 data")
    (b / "config" / "exp.yaml").write_text("a: 1\n")
    return b


def test_sha256sum_format_sorted_without_itself(bundle):
    hashes = write_checksums(bundle)
    text = (bundle / "manifest.sha256").read_text()
    expected = "".join(
        f"{hashlib.sha256((bundle / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in ["config/exp.yaml", "manifest.json", "scalars.parquet"]
    )
    assert text == expected
    assert set(hashes) == {"config/exp.yaml", "manifest.json", "scalars.parquet"}


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs GNU sha256sum")
def test_system_sha256sum_accepts_the_file_including_odd_names(bundle):
    (bundle / "config" / "we ird\\name.txt").write_text("x")
    write_checksums(bundle)
    proc = subprocess.run(
        ["sha256sum", "-c", "--strict", "manifest.sha256"],
        cwd=bundle,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verify_bundle(bundle).ok


def test_parse_roundtrip_and_binary_marker():
    text = format_checksums({"a b": "0" * 64, "c\\d": "f" * 64}).decode()
    parsed, bad = parse_checksums(text + f"{'1' * 64} *bin\nnot a line\n")
    assert parsed == [("a b", "0" * 64), ("c\\d", "f" * 64), ("bin", "1" * 64)]
    assert bad == [4]


def test_verify_detects_edit_missing_extra(bundle):
    write_checksums(bundle)
    assert verify_bundle(bundle).status is IntegrityStatus.OK

    (bundle / "notes.txt").write_text("added later")
    result = verify_bundle(bundle)
    assert result.status is IntegrityStatus.PARTIAL
    assert result.extra == ["notes.txt"]

    (bundle / "scalars.parquet").write_bytes(b"PAR1 dat4")
    (bundle / "config" / "exp.yaml").unlink()
    result = verify_bundle(bundle)
    assert result.status is IntegrityStatus.MISMATCH
    assert result.changed == ["scalars.parquet"]
    assert result.missing == ["config/exp.yaml"]
    assert "scalars.parquet" in result.describe()
    assert "config/exp.yaml" in result.describe()


def test_unsealed_and_malformed_lists(bundle):
    assert verify_bundle(bundle).status is IntegrityStatus.UNKNOWN
    write_checksums(bundle)
    with (bundle / "manifest.sha256").open("a") as fh:
        fh.write("garbage\n")
    result = verify_bundle(bundle)
    assert result.status is IntegrityStatus.MISMATCH
    assert result.malformed_lines == [4]


def test_symlink_is_not_hashed_but_reported(bundle, tmp_path):
    write_checksums(bundle)
    (tmp_path / "outside").write_text("x")
    (bundle / "link").symlink_to(tmp_path / "outside")
    result = verify_bundle(bundle)
    assert result.status is IntegrityStatus.PARTIAL
    assert result.extra == ["link"]
