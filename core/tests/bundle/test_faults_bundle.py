"""Storage faults: a full disk at each point, staging of new bundles, copied runs roots."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capa.bundle import finalize as finalize_mod
from capa.bundle import staging as staging_mod
from capa.bundle.manifest import read_manifest
from capa.bundle.recovery import ActiveRun, write_active
from capa.bundle.runlog import _LineFile
from capa.bundle.space import RESERVE_NAME
from capa.bundle.writer import BundleWriter
from capa.cli.main import main
from capa.errors import BundleError

from .conftest import crash, rows


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def enospc(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_bundle_that_cannot_be_created_leaves_no_directory(runs_root: Path):
    recursive: dict[str, object] = {}
    recursive["self"] = recursive  # what a recursive YAML alias loads as
    with pytest.raises((BundleError, ValueError)):
        BundleWriter.open(
            runs_root, run_id="20260101T000000-aaaa", manifest_fields={"custom": recursive}
        )
    assert dirs(runs_root) == []


def test_a_full_disk_at_open_is_one_disk_full_error_and_no_directory(runs_root, monkeypatch):
    monkeypatch.setattr(staging_mod, "make_reserve", enospc)
    with pytest.raises(BundleError, match="disk full: no space left on the device holding"):
        BundleWriter.open(runs_root, run_id="20260101T000000-aaaa")
    assert dirs(runs_root) == []


def test_the_space_reserve_lives_while_recording_and_never_reaches_a_sealed_bundle(open_writer):
    writer = open_writer()
    reserve = writer.bundle / RESERVE_NAME
    assert reserve.stat().st_size > 0
    writer.submit(rows(0, 10))
    result = writer.close("completed")
    assert result is not None
    assert result.ok
    assert not reserve.exists()
    assert RESERVE_NAME not in (writer.bundle / "manifest.sha256").read_text()


def test_a_writer_that_fails_releases_the_reserve_counts_drops_and_cannot_complete(
    open_writer, monkeypatch
):
    from capa.bundle import inflight

    writer = open_writer()
    monkeypatch.setattr(inflight.InflightStream, "write", enospc)
    writer.submit(rows(0, 10))
    wait_for(lambda: writer.failed is not None)
    assert "No space left on device" in (writer.failed or "")
    assert not (writer.bundle / RESERVE_NAME).exists()  # freed for the manifest and events
    writer.note_dropped(rows(10, 5), "writer_failed")  # what a producer could not hand over
    monkeypatch.undo()
    writer.close("completed", finalize=False)
    m = read_manifest(writer.bundle)
    assert m.run_status.value == "crashed"  # data stopped reaching disk: not "completed"
    assert "bundle writer failed" in m.exit_reason
    assert m.counts["dropped"]["by_reason"]["writer_failed"] == 15


def test_run_log_on_a_full_disk_never_raises(tmp_path, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available")
    log = _LineFile(Path("/dev/full"))
    log.write('{"event": "a"}\n')  # line buffered: the write hits ENOSPC at once
    log.write('{"event": "b"}\n')
    log.flush()
    log.close()
    assert log.error is not None
    assert log.error.errno == errno.ENOSPC
    assert log.lost_lines >= 1
    assert capsys.readouterr().err.count("cannot write /dev/full") == 1


def test_finalize_on_a_full_disk_exits_3_with_one_line_then_seals(runs_root, capsys, monkeypatch):
    writer = BundleWriter.open(runs_root, run_id="20260101T000000-aaaa", flush_interval_s=0.05)
    writer.submit(rows(0, 10))
    crash(writer, 10)  # the table is rebuilt from its journal by finalize
    monkeypatch.setattr(finalize_mod, "_write_parquet", enospc)
    code, _, err = run_cli(capsys, "finalize", writer.run_id, "--runs-root", str(runs_root))
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"capa: error: disk full: cannot finalize {writer.bundle}")
    assert "Traceback" not in err
    assert (writer.bundle / "scalars.in-flight.arrows").exists()  # left as it was
    monkeypatch.undo()  # space freed
    code, out, _ = run_cli(capsys, "finalize", writer.run_id, "--runs-root", str(runs_root))
    assert code == 0, out
    assert "bundle_status:    sealed" in out


def test_sealing_a_closed_run_on_a_full_disk_exits_3_then_seals(runs_root, capsys, monkeypatch):
    writer = BundleWriter.open(runs_root, run_id="20260101T000000-aaaa", flush_interval_s=0.05)
    writer.submit(rows(0, 10))
    writer.close("completed", finalize=False)
    assert (writer.bundle / "scalars.parquet").exists()  # closed by the writer
    monkeypatch.setattr(finalize_mod, "write_checksums", enospc)
    code, _, err = run_cli(capsys, "finalize", writer.run_id, "--runs-root", str(runs_root))
    assert code == 3
    assert err.strip().startswith(f"capa: error: disk full: cannot finalize {writer.bundle}")
    monkeypatch.undo()  # space freed
    code, out, _ = run_cli(capsys, "finalize", writer.run_id, "--runs-root", str(runs_root))
    assert code == 0, out
    assert "bundle_status:    sealed" in out


def test_finalize_of_a_directory_without_manifest_is_exit_2(runs_root, capsys):
    (runs_root / "20260101T000000-aaaa" / "config").mkdir(parents=True)
    code, _, err = run_cli(
        capsys, "finalize", "20260101T000000-aaaa", "--runs-root", str(runs_root)
    )
    assert code == 2
    assert "manifest missing" in err
    assert len(err.strip().splitlines()) == 1


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_finalizing_a_copied_runs_root_never_touches_the_original(tmp_path, capsys):
    original = tmp_path / "original"
    writer = BundleWriter.open(original, run_id="20260101T000000-aaaa", flush_interval_s=0.05)
    writer.submit(rows(0, 10))
    wait_for(lambda: writer.metrics().rows_durable >= 10)
    copy = tmp_path / "copy"
    # Copied while the writer still runs: skip its transient temp files (an atomic write's
    # temp file can vanish between listing and copying; it is never part of a bundle).
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns(".capa-tmp-*"))
    writer.close("aborted", "test", finalize=False)  # the original stays unsealed
    before = (writer.bundle / "manifest.json").read_bytes()
    # The copied checkpoint still names the original bundle, from a process now gone.
    checkpoint = json.loads((copy / ".runtime-active.json").read_text())
    assert checkpoint["bundle_path"] == str(writer.bundle.resolve())
    write_active(copy, ActiveRun(**{**checkpoint, "pid": _dead_pid(), "pid_start_ticks": None}))

    code, out, err = run_cli(capsys, "finalize", writer.run_id, "--runs-root", str(copy))
    assert code == 0, out + err
    assert f"the run checkpoint names {writer.bundle.resolve()}" in err
    assert (writer.bundle / "manifest.json").read_bytes() == before  # untouched
    assert not (writer.bundle / "manifest.sha256").exists()
    sealed = read_manifest(copy / writer.run_id)
    assert (sealed.run_status.value, sealed.bundle_status.value) == ("crashed", "sealed")


def test_staging_left_by_a_killed_open_is_removed_by_the_next_open(runs_root: Path):
    old = runs_root / ".capa-tmp-20250101T000000-dead"
    (old / "config").mkdir(parents=True)
    past = time.time() - staging_mod.STALE_STAGING_S - 60
    os.utime(old, (past, past))
    young = runs_root / ".capa-tmp-20250101T000001-live"  # maybe another process opening
    young.mkdir()
    writer = BundleWriter.open(runs_root, run_id="20260101T000000-aaaa")
    writer.close("completed")
    assert not old.exists()
    assert young.exists()
