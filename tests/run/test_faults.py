"""Fault injection: a full disk, failing adapters, Ctrl-C during open, odd grace periods.

Every fault must end in a documented exit code (never 5), one clear line, and a bundle that
is sealed or that ``capa finalize`` seals (checked with the independent ``sha256sum -c``).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from capa import PluginHost
from capa.bundle.finalize import finalize_bundle
from capa.cli.run import storage_failure_line
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.conductor import ConductorConfig
from capa.runtime.headless import run_headless
from capa.runtime.results import HeadlessResult
from capa.testing import make_distribution

from .conftest import CapaProcess, events, manifest, summary, write_experiment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

FAULTY = '''
import pathlib
import time

import capa


class Faulty(capa.Adapter):
    """A test adapter whose open can block (like a driver's) and whose start can raise."""

    id = "test.faulty"

    class Params(capa.ConfigModel):
        resource: str = "faulty"
        open_blocks_s: float = 0.0
        open_marker: str | None = None
        start_raises: bool = False

    @classmethod
    def resource_id(cls, params):
        return f"test:{params.resource}"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("x", "V")]

    async def open(self):
        if self.params.open_marker:
            pathlib.Path(self.params.open_marker).write_text("opening")
        if self.params.open_blocks_s:
            time.sleep(self.params.open_blocks_s)  # blocks the worker thread outright

    async def close(self):
        pass

    async def start(self, ctx):
        if self.params.start_raises:
            raise RuntimeError("trigger line not wired")

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=False)


@capa.hookimpl
def capa_register_adapters():
    return [Faulty]
'''


def faulty_device(**params: object) -> str:
    lines = "\n".join(f"{k} = {_toml(v)}" for k, v in params.items())
    return f'\n[[devices]]\nname = "faulty"\nadapter = "test.faulty"\n[devices.params]\n{lines}\n'


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def sha256_check(bundle: Path) -> None:
    """The independent check: coreutils' sha256sum against manifest.sha256."""
    tool = shutil.which("sha256sum")
    if tool is None:
        pytest.skip("sha256sum (coreutils) is not installed")
    done = subprocess.run(
        [tool, "--check", "--strict", "manifest.sha256"],
        cwd=bundle,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def assert_recoverable(bundle: Path, run_status: str = "crashed") -> dict:
    """Seal the bundle if it is not sealed yet, and check it end to end."""
    m = manifest(bundle)
    if m["bundle_status"] != "sealed":
        result = finalize_bundle(bundle)
        assert result.ok, result.integrity
        m = manifest(bundle)
    assert (m["run_status"], m["bundle_status"], m["integrity"]["status"]) == (
        run_status,
        "sealed",
        "ok",
    )
    leftovers = [
        p.name for p in bundle.rglob("*") if ".in-flight." in p.name or ".capa-tmp" in p.name
    ]
    assert leftovers == []
    sha256_check(bundle)
    return m


# ---------------------------------------------------------------- injected ENOSPC


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _after(n: int, original: Callable, exc: Callable[[], BaseException]) -> Callable:
    calls = 0

    def failing(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > n:
            raise exc()
        return original(*args, **kwargs)

    return failing


def inject(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from capa.bundle import events as events_mod
    from capa.bundle import finalize as finalize_mod
    from capa.bundle import inflight
    from capa.bundle import writer as writer_mod

    if point == "append":
        monkeypatch.setattr(
            inflight.InflightStream, "write", _after(5, inflight.InflightStream.write, _enospc)
        )
    elif point == "fsync":
        monkeypatch.setattr(
            inflight.InflightStream, "flush", _after(0, inflight.InflightStream.flush, _enospc)
        )
    elif point == "event":
        monkeypatch.setattr(
            events_mod.EventsDB,
            "insert",
            _after(
                0,
                events_mod.EventsDB.insert,
                lambda: sqlite3.OperationalError("database or disk is full"),
            ),
        )
    elif point == "manifest":
        original = writer_mod.write_manifest

        def manifest_write(bundle: Path, m: Any) -> None:
            if m.run_status.value != "running":  # the end-of-run write
                raise _enospc()
            original(bundle, m)

        monkeypatch.setattr(writer_mod, "write_manifest", manifest_write)
    elif point == "encode":  # the Parquet side of a table, while recording
        from capa.bundle import tables

        monkeypatch.setattr(
            tables.ParquetEncoder, "fsync", _after(0, tables.ParquetEncoder.fsync, _enospc)
        )
    elif point == "seal":  # sealing (the writer closed every table): the event log fails
        monkeypatch.setattr(
            finalize_mod, "seal_events", _after(0, finalize_mod.seal_events, _enospc)
        )
    else:  # pragma: no cover - a typo in the parametrisation
        raise AssertionError(point)


def headless(exp: Path, runs: Path, config: ConductorConfig | None = None) -> HeadlessResult:
    host = PluginHost()
    host.load()
    report = validate_experiment(exp, host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main() -> HeadlessResult:
        # The run is configured for 60 s: a writer failure that did not stop acquisition
        # would run into this bound.
        with anyio.fail_after(40):
            return await run_headless(plan, runs_root=runs, conductor_config=config)

    return anyio.run(main)


@pytest.mark.parametrize(
    ("point", "duration_s"),
    [
        ("append", 60),
        ("fsync", 60),
        ("encode", 60),
        ("event", 60),
        ("manifest", 1),
        ("seal", 1),
    ],
)
def test_enospc_stops_the_run_crashed_and_leaves_it_recoverable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, duration_s: float
) -> None:
    exp = write_experiment(tmp_path, config={"duration_s": duration_s}, daq_rate=2000, block=100)
    inject(point, monkeypatch)
    result = headless(exp, tmp_path / "runs")

    assert result.exit_code() == 2, result
    assert result.run_status == "crashed"
    assert result.bundle_path is not None
    assert result.exit_reason is not None
    assert result.exit_reason.startswith("writer_failed: disk full"), result.exit_reason
    line = storage_failure_line(result)
    assert line.startswith("disk full: ")
    assert str(result.bundle_path) in line
    assert "\n" not in line

    monkeypatch.undo()  # "space is freed"
    if point == "seal":
        # The acquisition completed and its manifest said so before sealing failed: the
        # manifest keeps that (terminal statuses never change); only sealing was delayed.
        assert manifest(result.bundle_path)["bundle_status"] == "finalizing"
        assert_recoverable(result.bundle_path, run_status="completed")
        return
    m = assert_recoverable(result.bundle_path)
    if point == "manifest":
        # The end-of-run manifest never reached disk: finalize records the crash itself.
        assert m["exit_reason"].startswith("recording process ended without finalizing")
    else:
        assert m["exit_reason"].startswith("writer_failed: disk full"), m["exit_reason"]
    if point in {"append", "fsync", "encode", "event"}:
        kinds = [k for k, _, _ in events(result.bundle_path)]
        assert "bundle.writer_failed" in kinds
    if point == "append":
        dropped = m["counts"]["dropped"]["by_reason"]
        assert dropped.get("writer_failed", 0) > 0


def test_enospc_at_bundle_open_is_exit_2_and_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capa.bundle import staging as staging_mod

    exp = write_experiment(tmp_path, config={"duration_s": 5})
    monkeypatch.setattr(staging_mod, "write_config_files", _after(0, lambda *a: None, _enospc))
    result = headless(exp, tmp_path / "runs")
    assert result.exit_code() == 2
    assert result.bundle_path is None
    assert "disk full" in storage_failure_line(result)
    runs = tmp_path / "runs"
    assert not runs.exists() or [p for p in runs.iterdir() if p.is_dir()] == []


# ---------------------------------------------------------------- a real full disk


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    target = tmp_path / "small"
    target.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_real_full_disk_stops_the_run_with_one_line(
    capa_proc: CapaProcess, small_tmpfs: Path
) -> None:
    # Most of the 2 MiB is taken before the run starts; freeing it later is "space freed".
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024))
    runs = small_tmpfs / "runs"
    exp = write_experiment(
        capa_proc.tmp, config={"duration_s": 300}, daq_rate=20000, block=200, daq_channels=4
    )
    started = time.monotonic()
    # A run that kept acquiring for its 300 s would hit this timeout.
    proc = capa_proc.run("run", str(exp), "--runs-root", str(runs), timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert elapsed < 120
    s = summary(proc.stdout)
    bundle = Path(s["bundle"])
    assert s["run_status"] == "crashed"
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("capa: error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("capa: error: disk full: ")
    assert str(bundle) in errors[0]

    filler.unlink()
    if s["bundle_status"] != "sealed":
        fin = capa_proc.run("finalize", bundle.name, "--runs-root", str(runs))
        assert fin.returncode == 0, fin.stdout + fin.stderr
    m = assert_recoverable(bundle)
    assert m["exit_reason"].startswith("writer_failed: disk full")


# ---------------------------------------------------------------- failing adapters


def test_ctrl_c_during_a_blocking_open_stops_at_once(tmp_path: Path, capa_site: Path) -> None:
    make_distribution(
        capa_site,
        "faulty-capa",
        files={"faulty_plugin.py": FAULTY},
        entry_points={"capa": {"faulty": "faulty_plugin"}},
    )
    capa = CapaProcess(tmp_path, site=capa_site)
    marker = tmp_path / "opening"
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 5},
        extra_devices=faulty_device(open_blocks_s=60, open_marker=str(marker)),
    )
    proc = capa.start("run", str(exp), "--runs-root", "runs")
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the adapter's open never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    # The open blocks for 60 s: only a cancelled open ends the process within this bound.
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, out + err
    s = summary(out)
    assert s["run_status"] == "aborted"
    assert s["exit_reason"].startswith("operator_stop"), s
    assert "Traceback" not in err
    runs = capa.runs
    assert not runs.exists() or [p for p in runs.iterdir() if p.is_dir()] == []


def test_kill_9_during_a_blocking_open_leaves_nothing_to_recover(
    tmp_path: Path, capa_site: Path
) -> None:
    make_distribution(
        capa_site,
        "faulty-capa",
        files={"faulty_plugin.py": FAULTY},
        entry_points={"capa": {"faulty": "faulty_plugin"}},
    )
    capa = CapaProcess(tmp_path, site=capa_site)
    marker = tmp_path / "opening"
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 5},
        extra_devices=faulty_device(open_blocks_s=60, open_marker=str(marker)),
    )
    proc = capa.start("run", str(exp), "--runs-root", "runs")
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the adapter's open never started"
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=20)
    runs = capa.runs
    assert not runs.exists() or sorted(p.name for p in runs.iterdir()) == []
    # The next run in this runs root is not disturbed by the killed one.
    quick = write_experiment(tmp_path, config={"duration_s": 0})
    nxt = capa.run("run", str(quick), "--runs-root", "runs", timeout=60)
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert "crashed" not in nxt.stderr


def test_an_adapter_whose_start_raises_crashes_but_seals(tmp_path: Path, capa_site: Path) -> None:
    make_distribution(
        capa_site,
        "faulty-capa",
        files={"faulty_plugin.py": FAULTY},
        entry_points={"capa": {"faulty": "faulty_plugin"}},
    )
    capa = CapaProcess(tmp_path, site=capa_site)
    exp = write_experiment(
        tmp_path, config={"duration_s": 30}, extra_devices=faulty_device(start_raises=True)
    )
    proc = capa.run("run", str(exp), "--runs-root", "runs", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "crashed",
        "sealed",
        "ok",
    )
    reason = s["exit_reason"]
    assert "ExceptionGroup" not in reason
    assert "TaskGroup" not in reason
    assert "faulty" in reason  # the device is named
    assert "could not start sampling" in reason
    assert "RuntimeError: trigger line not wired" in reason
    assert "ExceptionGroup" not in proc.stderr
    bundle = capa.runs / s["run_id"]
    assert "conductor.crashed" in [k for k, _, _ in events(bundle)]
    sha256_check(bundle)


def _load_fake_ni_server():
    path = REPO / "packages" / "capa-nidaq" / "tests" / "fake_ni_server.py"
    spec = importlib.util.spec_from_file_location("capa_faults_fake_ni_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


NI_RIG = """
name = "daq-rig"
[[devices]]
name = "daq"
adapter = "nidaq.task"
[devices.params]
device = "cDAQ1"
grpc_server = "{address}"
timing = {{ sample_rate_hz = 1000, block_size = 100 }}
channels = [
  {{ kind = "voltage", physical_channel = "cDAQ1Mod2/ai0", name = "v0" }},
]

[[channels]]
name = "v0"
kind = "voltage"
unit = "V"
source = {{ device = "daq", field = "v0" }}
"""


def test_ni_timed_mode_against_a_server_lacking_start_task(tmp_path: Path) -> None:
    pytest.importorskip("grpc", reason="nidaqmx[grpc] (a test dependency) is not installed")
    pytest.importorskip("capa_nidaq")
    fake = _load_fake_ni_server()
    # The generated servicer's StartTask answers UNIMPLEMENTED: a server lacking that call.
    fake.FakeNiDaqmx.StartTask = fake.pb_grpc.NiDAQmxServicer.StartTask
    with fake.FakeServer() as server:
        (tmp_path / "rig.toml").write_text(NI_RIG.format(address=server.address))
        (tmp_path / "experiment.yaml").write_text(
            "hardware: rig.toml\n"
            "procedure: {id: capa.builtin.free_run, config: {duration_s: 30}}\n"
            "operator: {id: tester}\nsample: {id: S-1}\nruntime: {shutdown_grace_s: 2}\n"
        )
        capa = CapaProcess(tmp_path)
        proc = capa.run("run", "experiment.yaml", "--runs-root", "runs", timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"]) == ("crashed", "sealed"), s
    assert "ExceptionGroup" not in s["exit_reason"]
    assert "daq" in s["exit_reason"]
    bundle = capa.runs / s["run_id"]
    assert not (bundle / "scalars.in-flight.arrows").exists()
    sha256_check(bundle)


# ---------------------------------------------------------------- grace periods


def test_zero_grace_leaves_no_unawaited_coroutine(capa_proc: CapaProcess) -> None:
    exp = write_experiment(capa_proc.tmp, config={"duration_s": 1}, runtime={"shutdown_grace_s": 0})
    capa_proc.env["PYTHONWARNINGS"] = "always::RuntimeWarning"
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=60)
    assert "never awaited" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert s["bundle_status"] == "sealed"


@pytest.mark.parametrize("grace", [2.0**63, float("inf")])
def test_a_huge_grace_reaching_the_runtime_does_not_overflow(tmp_path: Path, grace: float) -> None:
    exp = write_experiment(tmp_path, config={"duration_s": 0.5})
    result = headless(exp, tmp_path / "runs", ConductorConfig(shutdown_grace_s=grace))
    assert result.exit_code() == 0, result
    assert result.bundle_status == "sealed"


def test_an_exception_group_escaping_the_conductor_still_ends_crashed_and_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capa.runtime.conductor import Conductor

    async def broken_drain(self: Conductor) -> list[str]:
        raise ExceptionGroup("unhandled errors in a TaskGroup", [RuntimeError("drain bug")])

    monkeypatch.setattr(Conductor, "_drain", broken_drain)
    exp = write_experiment(tmp_path, config={"duration_s": 0.5})
    result = headless(exp, tmp_path / "runs")
    assert result.exit_code() == 2, result
    assert result.exit_reason == "conductor: RuntimeError: drain bug"
    assert result.bundle_path is not None
    assert result.bundle_status == "sealed"
    sha256_check(result.bundle_path)


def test_an_io_error_on_fsync_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capa.bundle import inflight

    def eio() -> OSError:
        return OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(
        inflight.InflightStream, "flush", _after(0, inflight.InflightStream.flush, eio)
    )
    exp = write_experiment(tmp_path, config={"duration_s": 60}, daq_rate=2000, block=100)
    result = headless(exp, tmp_path / "runs")
    assert result.exit_code() == 2, result
    assert result.bundle_path is not None
    line = storage_failure_line(result)
    assert line.startswith(f"I/O error writing {result.bundle_path}"), line
    assert "Input/output error" in line
    monkeypatch.undo()
    assert_recoverable(result.bundle_path)
