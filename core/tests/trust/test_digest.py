"""The record digest: re-hashed from disk, blind to installer files and bytecode,
sensitive to one changed byte, added files, missing files and editable installs."""

from __future__ import annotations

import importlib.metadata as md
import json
import uuid
import zipfile

import pytest

from capa.testing import make_distribution
from capa.trust.digest import canonical_digest, inspect_distribution
from capa.trust.manage import wheel_digest

from .plugin_kit import plugin_source, write_wheel


@pytest.fixture
def installed(capa_site):
    """An installed throwaway plugin distribution: (site, dist, module name)."""
    module = f"kit_{uuid.uuid4().hex[:8]}"
    info = make_distribution(
        capa_site,
        "kit-capa",
        "1.0",
        files={
            f"{module}/__init__.py": "",
            f"{module}/plugin.py": plugin_source(module, "kit.quick"),
        },
        entry_points={"capa.test": {"kit": f"{module}.plugin"}},
    )
    return capa_site, md.PathDistribution(info), module


def test_digest_is_stable_and_covers_package_and_metadata(installed):
    _site, dist, module = installed
    first = inspect_distribution(dist, f"{module}.plugin")
    again = inspect_distribution(dist, f"{module}.plugin")
    assert first.digest == again.digest
    assert first.digest.startswith("sha256:")
    # two package files + METADATA + entry_points.txt; INSTALLER and RECORD excluded
    assert first.files == 4
    assert not first.problems()
    assert not first.editable


def test_one_changed_byte_changes_the_digest_and_names_the_file(installed):
    site, dist, module = installed
    before = inspect_distribution(dist, f"{module}.plugin").digest
    target = site / module / "plugin.py"
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))
    after = inspect_distribution(dist, f"{module}.plugin")
    assert after.digest != before
    assert after.changed == [f"{module}/plugin.py"]


def test_installer_files_and_bytecode_do_not_count(installed):
    site, dist, module = installed
    before = inspect_distribution(dist, f"{module}.plugin").digest
    ((site / "kit_capa-1.0.dist-info") / "INSTALLER").write_text("someone-else\n")
    ((site / "kit_capa-1.0.dist-info") / "REQUESTED").write_text("")
    ((site / "kit_capa-1.0.dist-info") / "direct_url.json").write_text(
        json.dumps({"url": "file:///x.whl"})
    )
    cache = site / module / "__pycache__"
    cache.mkdir()
    (cache / "plugin.cpython-311.pyc").write_bytes(b"\0" * 16)
    after = inspect_distribution(dist, f"{module}.plugin")
    assert after.digest == before
    assert not after.problems()


def test_unlisted_and_missing_files_are_reported(installed):
    site, dist, module = installed
    (site / module / "sneaky.py").write_text("print('hi')\n")
    (site / module / "__init__.py").unlink()
    found = inspect_distribution(dist, "")
    assert found.unlisted == [f"{module}/sneaky.py"]
    assert found.missing == [f"{module}/__init__.py"]
    assert len(found.problems()) == 2


def test_rewritten_record_still_changes_the_digest(installed):
    """Updating RECORD to match a modified file hides nothing: the digest is of the bytes."""
    site, dist, module = installed
    before = inspect_distribution(dist, f"{module}.plugin").digest
    (site / module / "plugin.py").write_text("# replaced\n")
    record = (site / "kit_capa-1.0.dist-info") / "RECORD"
    rows = [r for r in record.read_text().splitlines() if not r.startswith(f"{module}/plugin.py")]
    record.write_text("\n".join(rows) + f"\n{module}/plugin.py,,\n")
    after = inspect_distribution(dist, f"{module}.plugin")
    assert after.digest != before


@pytest.mark.parametrize("how", ["direct_url", "pth", "outside"])
def test_editable_installs_are_detected(capa_site, how):
    module = f"ed_{uuid.uuid4().hex[:8]}"
    files = {} if how == "outside" else {f"{module}/__init__.py": ""}
    if how == "pth":
        files[f"__editable__.ed-{module}.pth"] = "/somewhere/src\n"
    info = make_distribution(capa_site, "ed-capa", "1.0", files=files)
    if how == "direct_url":
        (info / "direct_url.json").write_text(
            json.dumps({"url": "file:///src/ed", "dir_info": {"editable": True}})
        )
    found = inspect_distribution(md.PathDistribution(info), f"{module}.plugin")
    expected = {"direct_url": "dir_info.editable", "pth": ".pth", "outside": "not among"}[how]
    assert expected in found.editable


def test_shadowed_module_is_reported(capa_site, tmp_path, monkeypatch):
    module = f"sh_{uuid.uuid4().hex[:8]}"
    info = make_distribution(capa_site, "sh-capa", "1.0", files={f"{module}/__init__.py": ""})
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / module).mkdir(parents=True)
    (elsewhere / module / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(elsewhere))
    found = inspect_distribution(md.PathDistribution(info), f"{module}.plugin")
    assert "would be imported from" in found.shadowed


def test_wheel_digest_equals_digest_once_installed(capa_site, tmp_path):
    module = f"wh_{uuid.uuid4().hex[:8]}"
    wheel = write_wheel(
        tmp_path / "w", "wh-capa", "2.0", plugin="wh", module=module, procedure_id="wh.q"
    )
    with zipfile.ZipFile(wheel) as zf:  # install by unpacking, as an installer would
        zf.extractall(capa_site)
    (capa_site / "wh_capa-2.0.dist-info" / "INSTALLER").write_text("test\n")
    dist = md.PathDistribution(capa_site / "wh_capa-2.0.dist-info")
    assert wheel_digest(wheel) == inspect_distribution(dist, f"{module}.plugin").digest


def test_canonical_digest_ignores_order_but_not_content():
    a = canonical_digest([("a", "1"), ("b", "2")])
    assert a == canonical_digest([("b", "2"), ("a", "1")])
    assert a != canonical_digest([("a", "1"), ("b", "3")])
