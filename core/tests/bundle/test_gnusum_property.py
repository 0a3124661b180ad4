"""capa's verifier against the real GNU ``sha256sum -c --strict`` on generated inputs.

The oracle is the coreutils binary itself. capa calls a bundle ``ok`` exactly when
``sha256sum -c --strict manifest.sha256`` succeeds *and* every file of the bundle is
covered, where "covered" is also asked of sha256sum: after changing the file's bytes,
``sha256sum -c`` must fail. Names are plain relative names (capa refuses ``..``, absolute
paths and symbolic links that sha256sum would follow; those are tested separately).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capa.bundle.integrity import format_checksums, verify_bundle
from capa.bundle.paths import CHECKSUMS_FILE

SHA256SUM = shutil.which("sha256sum")
pytestmark = pytest.mark.skipif(SHA256SUM is None, reason="GNU sha256sum not installed")

NAME_CHARS = "ab *\\#()=\t\r\x0b\nS"
NOISE = [b"\n", b"\r", b"\x0b", b"\t", b" ", b"*", b"\\", b"#", b"(", b")", b"=", b"0", b"A", b""]

names = st.text(NAME_CHARS, min_size=1, max_size=4).filter(
    lambda n: n not in ("-", ".", "..") and "/" not in n
)


def _gnu_ok(bundle: Path) -> bool:
    assert SHA256SUM is not None
    proc = subprocess.run(
        [SHA256SUM, "-c", "--strict", CHECKSUMS_FILE],
        cwd=bundle,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=30,
    )
    return proc.returncode == 0


def _gnu_covers(bundle: Path, name: str) -> bool:
    path = bundle / name
    original = path.read_bytes()
    path.write_bytes(original + b"!")
    try:
        return not _gnu_ok(bundle)
    finally:
        path.write_bytes(original)


def _line(name: str, digest: str, style: str) -> bytes:
    raw = os.fsencode(name)
    if style == "canonical":
        return format_checksums({name: digest})
    if style == "binary":
        return format_checksums({name: digest}).replace(b"  ", b" *", 1)
    if style == "bsd":
        return b"SHA256 (" + raw + b") = " + digest.encode() + b"\n"
    if style == "reversed":
        return digest.encode() + b" " + raw + b"\n"
    if style == "upper":
        return digest.upper().encode() + b"  " + raw + b"\n"
    return digest.encode() + b"  " + raw + b"\n"  # unescaped, whatever the name holds


@st.composite
def bundles(draw: st.DrawFn) -> tuple[dict[str, bytes], bytes]:
    files = draw(st.dictionaries(names, st.binary(max_size=8), min_size=1, max_size=3))
    lines: list[bytes] = []
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()) and draw(st.booleans()):
                digest = hashlib.sha256(data + b"x").hexdigest()
            style = draw(
                st.sampled_from(["canonical", "binary", "bsd", "reversed", "upper", "raw"])
            )
            lines.append(_line(name, digest, style))
    if draw(st.booleans()):
        lines.insert(
            draw(st.integers(0, len(lines))),
            draw(st.sampled_from([b"#c\n", b"\n", b"\r\n", b"  \n"])),
        )
    text = b"".join(lines)
    # Byte-level mutations: line breaks swapped for VT/CR, markers and digits flipped.
    for _ in range(draw(st.integers(0, 2))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from(NOISE)) + text[at + 1 :]
    return files, text


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(bundles())
def test_capa_agrees_with_gnu_sha256sum(case: tuple[dict[str, bytes], bytes]) -> None:
    files, text = case
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp)
        for name, data in files.items():
            (bundle / name).write_bytes(data)
        (bundle / CHECKSUMS_FILE).write_bytes(text)
        gnu = _gnu_ok(bundle) and all(_gnu_covers(bundle, n) for n in files)
        result = verify_bundle(bundle)
        assert result.ok == gnu, (text, sorted(files), result.describe())


def _sealed(tmp_path: Path) -> Path:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "a.txt").write_bytes(b"data")
    (bundle / CHECKSUMS_FILE).write_bytes(
        format_checksums({"a.txt": hashlib.sha256(b"data").hexdigest()})
    )
    return bundle


def test_final_lf_replaced_by_vt_is_a_mismatch_as_for_sha256sum(tmp_path):
    bundle = _sealed(tmp_path)
    listing = bundle / CHECKSUMS_FILE
    listing.write_bytes(listing.read_bytes()[:-1] + b"\x0b")
    assert not _gnu_ok(bundle)
    result = verify_bundle(bundle)
    assert result.status.value == "mismatch", result.describe()


def test_manifest_sha256_as_symlink_to_a_copy_is_refused(tmp_path):
    bundle = _sealed(tmp_path)
    outside = tmp_path / "copy.sha256"
    (bundle / CHECKSUMS_FILE).rename(outside)
    (bundle / CHECKSUMS_FILE).symlink_to(outside)
    result = verify_bundle(bundle)
    assert result.status.value == "mismatch"
    assert "manifest.sha256 is a symbolic link" in result.describe()


@pytest.mark.parametrize("kind", ["symlink", "dotdot", "absolute", "fifo"])
def test_listed_names_must_be_regular_files_inside_the_bundle(tmp_path, kind):
    bundle = _sealed(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"data")
    digest = hashlib.sha256(b"data").hexdigest()
    listing = bundle / CHECKSUMS_FILE
    if kind == "symlink":
        (bundle / "a.txt").unlink()
        (bundle / "a.txt").symlink_to(outside)
        name = "a.txt"
    elif kind == "dotdot":
        name = "../outside.txt"
    elif kind == "absolute":
        name = str(outside)
    else:
        os.mkfifo(bundle / "pipe")
        name = "pipe"
    listing.write_bytes(listing.read_bytes() + f"{digest}  {name}\n".encode())
    result = verify_bundle(bundle)  # never blocks on the FIFO
    assert result.status.value == "mismatch", result.describe()
    assert name in " ".join(result.refused)
