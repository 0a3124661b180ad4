from datetime import UTC, datetime
from pathlib import Path

import pytest

from capa.bundle.paths import (
    RUN_ID_PATTERN,
    bundle_dir,
    check_run_id,
    new_run_id,
    resolve_runs_root,
    safe_component,
)
from capa.bundle.recovery import read_active
from capa.errors import BundleError


def test_runs_root_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAPA_RUNS_ROOT", raising=False)
    assert resolve_runs_root(None) == tmp_path / "runs"
    monkeypatch.setenv("CAPA_RUNS_ROOT", "/data/env-runs")
    assert resolve_runs_root(None) == Path("/data/env-runs")
    assert resolve_runs_root("/data/cli-runs") == Path("/data/cli-runs")


def test_run_ids_look_like_the_seed():
    run_id = new_run_id(datetime(2026, 5, 24, 14, 32, 0, tzinfo=UTC))
    assert run_id.startswith("20260524T143200-")
    assert RUN_ID_PATTERN.match(run_id)
    assert RUN_ID_PATTERN.match("20260524T143200-7f3a")
    assert len({new_run_id() for _ in range(50)}) > 1


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", ".hidden", "x" * 200])
def test_run_ids_and_names_that_could_escape_are_refused(bad, tmp_path):
    with pytest.raises(BundleError):
        check_run_id(bad)
    with pytest.raises(BundleError):
        bundle_dir(tmp_path, bad)
    with pytest.raises(BundleError):
        safe_component(bad, "camera")


def test_unreadable_checkpoint_is_reported_naming_the_file(tmp_path):
    (tmp_path / ".runtime-active.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"\.runtime-active\.json"):
        read_active(tmp_path)


def test_config_files_are_copied_from_paths_and_bytes(open_writer, tmp_path):
    source = tmp_path / "rig.toml"
    source.write_bytes(b"name = 'rig'\n")
    writer = open_writer(config_files={"rig.toml": source, "methods/a.method.toml": b"x"})
    writer.close()
    assert (writer.bundle / "config/rig.toml").read_bytes() == b"name = 'rig'\n"
    assert (writer.bundle / "config/methods/a.method.toml").read_bytes() == b"x"
    with pytest.raises(BundleError, match="cannot copy config file"):
        open_writer(config_files={"gone.toml": tmp_path / "gone.toml"})


def test_refused_open_leaves_no_directory(open_writer, runs_root, tmp_path):
    with pytest.raises(BundleError):
        open_writer(run_id="20260101T000000-0001", config_files={"x": tmp_path / "missing"})
    with pytest.raises(BundleError, match="tags"):
        open_writer(run_id="20260101T000000-0002", manifest_fields={"tags": 5})
    assert not (runs_root / "20260101T000000-0001").exists()
    assert not (runs_root / "20260101T000000-0002").exists()


def test_nested_child_run_keeps_the_parent_checkpoint(open_writer, runs_root):
    parent = open_writer()
    child = open_writer(nested=True)
    assert read_active(runs_root).run_id == parent.run_id  # type: ignore[union-attr]
    assert child.close().ok  # type: ignore[union-attr]
    assert read_active(runs_root).run_id == parent.run_id  # type: ignore[union-attr]
    parent.close()
    assert read_active(runs_root) is None
