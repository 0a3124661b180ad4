"""Fault injection on the run's data path: failing sinks, failing adapters, bad emissions.

Every test runs a real run in-process (pool, workers, conductor, writer, finalize) with a
third-party-style test plugin (``fault_plugin``), then checks from the sealed bundle:
the exit code, that the bundle is sealed, and the accounting invariant — for every device
and stream ``emitted == written + dropped`` and the rows in each Parquet file (read from
its footer here, independently of finalize) equal the rows the writer wrote.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest

from capa import PluginHost
from capa.bundle.files import BundleFiles
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.headless import run_headless
from capa.runtime.results import HeadlessResult

from . import fault_plugin
from .conftest import manifest, write_experiment

pytestmark = pytest.mark.slow


@pytest.fixture
def host() -> Any:
    # The installed plugins too: the runs use capa.builtin.free_run.
    plugin_host = PluginHost()
    plugin_host.load()
    plugin_host.register(fault_plugin, name="faults")
    yield plugin_host
    fault_plugin.RUNAWAY_RELEASE.set()  # end streams of workers a test abandoned


def run(host: Any, exp: Path, runs: Path) -> HeadlessResult:
    report = validate_experiment(exp, host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main() -> HeadlessResult:
        with anyio.fail_after(60):
            return await run_headless(plan, runs_root=runs, host=host)

    return anyio.run(main)


def sinks_yaml(*entries: dict[str, Any]) -> str:
    return "sinks:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries)


def event_rows(bundle: Path) -> list[tuple[str, str, str, str]]:
    # Without the watchdogs' loop-lag / stall warnings: a loaded machine may add them.
    with sqlite3.connect(bundle / "events.sqlite") as db:
        return db.execute(
            "SELECT kind, severity, source, message FROM events"
            " WHERE kind NOT IN ('conductor.loop_lag', 'conductor.saturation_warning')"
            " ORDER BY id"
        ).fetchall()


def assert_accounted(bundle: Path) -> dict[str, Any]:
    """The invariant, checked from the manifest and the files' own footers."""
    m = manifest(bundle)
    assert m["bundle_status"] == "sealed", m["bundle_status"]
    assert m["integrity"]["status"] == "ok"
    acc = m["counts"]["accounting"]
    assert acc["status"] == "ok", acc
    written_per_stream: dict[str, int] = {}
    for device, streams in acc["devices"].items():
        for stream, c in streams.items():
            assert c["emitted"] == c["written"] + sum(c["dropped"].values()), (device, stream, c)
            written_per_stream[stream] = written_per_stream.get(stream, 0) + c["written"]
    scalars = pq.ParquetFile(bundle / "scalars.parquet").metadata.num_rows
    assert written_per_stream.get("scalars", 0) == scalars
    assert not (bundle / "accounting.checkpoint.json").exists()
    return acc


# ------------------------------------------------------------------------- sinks
def test_third_party_csv_sink_gets_every_row_and_event(host, tmp_path):
    out = tmp_path / "out.csv"
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.5},
        extra_yaml=sinks_yaml({"id": "test.csv", "config": {"path": str(out)}}),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0, result.exit_reason
    bundle = result.bundle_path
    assert bundle is not None
    assert_accounted(bundle)

    rows = list(csv.reader(out.open()))
    assert rows[0] == ["kind", "t_mono_ns", "name", "value", "run_id"]
    samples = [r for r in rows if r[0] == "sample"]
    table = pq.read_table(bundle / "scalars.parquet")
    assert len(samples) == table.num_rows > 0
    assert sorted(int(r[1]) for r in samples) == table.column("t_mono_ns").to_pylist()
    assert {r[4] for r in rows[1:]} == {result.run_id}
    watchdogs = ("conductor.loop_lag", "conductor.saturation_warning")
    csv_events = [r[2] for r in rows if r[0] == "event" and r[2] not in watchdogs]
    assert csv_events == [k for k, *_ in event_rows(bundle)]
    assert rows[-1][:3] == ["end", "", "completed"]

    sink = manifest(bundle)["counts"]["sinks"]["test.csv#0"]
    assert sink["state"] == "closed"
    assert sink["failed"] == 0
    assert sink["dropped"] == 0
    assert sink["delivered"] == sink["offered"] > len(csv_events)


def test_slow_sink_drops_are_counted_and_the_bundle_is_untouched(host, tmp_path):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.5},
        daq_rate=2000,
        block=20,  # 100 batches a second; the sink takes 50 ms over each
        extra_yaml=sinks_yaml({"id": "test.slow", "queue_size": 4}),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0, result.exit_reason
    bundle = result.bundle_path
    assert bundle is not None
    acc = assert_accounted(bundle)
    daq = acc["devices"]["daq"]["scalars"]
    assert daq["dropped"] == {}  # the bundle lost nothing to the slow sink
    assert daq["written"] >= 2 * 2000  # >= 1 s of 2 channels at 2 kS/s

    sink = manifest(bundle)["counts"]["sinks"]["test.slow#0"]
    assert sink["dropped_by_reason"]["queue_full"] > 0
    assert sink["offered"] == sink["delivered"] + sink["failed"] + sink["dropped"]
    kinds = [k for k, *_ in event_rows(bundle)]
    assert kinds.count("sink.dropped") == 1


def test_raising_sink_with_warn_is_an_event_and_the_run_completes(host, tmp_path):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.0},
        extra_yaml=sinks_yaml({"id": "test.raising", "config": {"fail_on": 3}}),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0, result.exit_reason
    bundle = result.bundle_path
    assert bundle is not None
    assert_accounted(bundle)
    failed = [e for e in event_rows(bundle) if e[0] == "sink.failed"]
    assert len(failed) == 1
    assert failed[0][1:3] == ("error", "sink:test.raising#0")
    assert "consume raised RuntimeError: sink on fire" in failed[0][3]
    sink = manifest(bundle)["counts"]["sinks"]["test.raising#0"]
    assert sink["failed"] == 1
    assert sink["delivered"] == sink["offered"] - 1
    assert sink["error"] == "consume: RuntimeError: sink on fire"


def test_raising_sink_with_abort_aborts_the_run_sealed(host, tmp_path):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 30},
        extra_yaml=sinks_yaml(
            {"id": "test.raising", "config": {"fail_on": 3}, "on_failure": "abort"}
        ),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.run_status == "aborted"
    assert result.exit_code() == 1
    assert result.exit_reason.startswith("sink_failure: sink test.raising#0: consume raised")
    bundle = result.bundle_path
    assert bundle is not None
    assert_accounted(bundle)
    sink = manifest(bundle)["counts"]["sinks"]["test.raising#0"]
    assert sink["state"] == "failed"
    assert sink["offered"] == sink["delivered"] + sink["failed"] + sink["dropped"]


def test_hanging_sink_is_abandoned_counted_and_the_run_ends_on_time(host, tmp_path):
    fault_plugin.RUNAWAY_RELEASE.clear()
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 0.5},
        runtime={"shutdown_grace_s": 0.5},
        extra_yaml=sinks_yaml({"id": "test.hanging", "queue_size": 8}),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0, result.exit_reason
    bundle = result.bundle_path
    assert bundle is not None
    assert_accounted(bundle)
    sink = manifest(bundle)["counts"]["sinks"]["test.hanging#0"]
    assert sink["state"] == "abandoned"
    assert sink["delivered"] == 0
    assert sink["offered"] == sink["dropped"] > 8
    assert sink["dropped_by_reason"]["abandoned"] >= 1  # the record it hangs on, at least
    kinds = [k for k, *_ in event_rows(bundle)]
    assert "sink.abandoned" in kinds


def test_sink_that_cannot_open_is_reported_and_warn_keeps_the_run(host, tmp_path):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 0.5},
        extra_yaml=sinks_yaml({"id": "test.raising", "config": {"fail_on": 0}}),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0
    bundle = result.bundle_path
    assert bundle is not None
    assert_accounted(bundle)
    failed = [e for e in event_rows(bundle) if e[0] == "sink.failed"]
    assert "open raised ConnectionRefusedError" in failed[0][3]
    sink = manifest(bundle)["counts"]["sinks"]["test.raising#0"]
    assert sink["state"] == "failed"
    assert sink["delivered"] == 0
    assert sink["dropped"] == sink["offered"] > 0


def test_listing_the_bundle_as_an_extra_sink_is_a_validation_error(host, tmp_path):
    exp = write_experiment(tmp_path, extra_yaml=sinks_yaml({"id": "capa.bundle"}))
    report = validate_experiment(exp, host)
    assert not report.ok
    assert any("capa.bundle (the run bundle) is always on" in str(p) for p in report.problems)


# ------------------------------------------------------------------------- adapters
BAD_DEVICE = """
[[devices]]
name = "bad"
adapter = "test.bad_emitter"
on_failure = "{policy}"
[devices.params]
rate_hz = 50

[[channels]]
name = "bad_v"
kind = "voltage"
unit = "V"
source = {{ device = "bad", field = "v" }}
"""


@pytest.mark.parametrize(
    ("policy", "code", "status"), [("warn", 0, "completed"), ("abort", 2, "crashed")]
)
def test_bad_emissions_are_device_failures_counted_as_dropped(host, tmp_path, policy, code, status):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.0},
        extra_devices=textwrap.dedent(BAD_DEVICE.format(policy=policy)),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.run_status == status, result.exit_reason
    assert result.exit_code() == code
    bundle = result.bundle_path
    assert bundle is not None
    acc = assert_accounted(bundle)
    bad = acc["devices"]["bad"]["scalars"]
    assert bad["written"] == 0
    assert bad["dropped"]["invalid_emission"] == bad["emitted"] > 0
    rejected = [e for e in event_rows(bundle) if e[0] == "device.emission_rejected"]
    assert rejected, event_rows(bundle)
    assert "bad: t_mono_ns must be a 1-D array" in rejected[0][3]
    if policy == "abort":
        assert result.exit_reason.startswith("device bad: EmissionError")
    # The other devices recorded normally beside it.
    assert acc["devices"]["oven"]["scalars"]["written"] > 0


RUNAWAY_DEVICE = """
[[devices]]
name = "runaway"
adapter = "test.runaway"
on_failure = "warn"
[devices.params]
block = 100
yield_for_s = {yield_for_s}

[[channels]]
name = "runaway_v"
kind = "voltage"
unit = "V"
source = {{ device = "runaway", field = "v" }}
"""


# 0.2: stops yielding once running; 0: never yields at all, not even to let sampling begin.
@pytest.mark.parametrize("yield_for_s", [0.2, 0])
def test_worker_that_ignores_stop_has_its_late_rows_counted_after_stop(
    host, tmp_path, yield_for_s, monkeypatch
):
    fault_plugin.RUNAWAY_RELEASE.clear()
    # Whether the runaway emits between the pipeline's seal and the writer's last
    # accounting checkpoint is a race (it emits every 10 ms; sealing can be quicker): hold
    # the seal until one late batch has been counted, so the test always sees one.
    from capa.runtime.pipeline import ChannelPipeline

    late = threading.Event()
    real_seal, real_after_stop = ChannelPipeline.seal, ChannelPipeline._after_stop

    def after_stop(self, device, emission):
        real_after_stop(self, device, emission)
        late.set()

    def seal(self, timeout_s):
        settled = real_seal(self, timeout_s)
        late.wait(5.0)
        return settled

    monkeypatch.setattr(ChannelPipeline, "_after_stop", after_stop)
    monkeypatch.setattr(ChannelPipeline, "seal", seal)
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.0},
        extra_devices=RUNAWAY_DEVICE.format(yield_for_s=yield_for_s),
        runtime={"shutdown_grace_s": 0.5},
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.exit_code() == 0, result.exit_reason  # on_failure = warn
    bundle = result.bundle_path
    assert bundle is not None
    acc = assert_accounted(bundle)
    runaway = acc["devices"]["runaway"]["scalars"]
    assert runaway["written"] > 0
    assert runaway["dropped"]["after_stop"] > 0
    kinds = [k for k, *_ in event_rows(bundle)]
    assert "run.dropped_after_stop" in kinds
    assert manifest(bundle)["queue_health"]["runtime"]["abandoned_workers"] == ["test:runaway"]


def test_rows_lost_silently_make_an_accounting_mismatch_exit_3(host, tmp_path, monkeypatch):
    """The invariant itself: a writer that loses rows without counting them is caught."""
    original = BundleFiles.write
    lost = [0]

    def lossy_write(self: BundleFiles, record: object) -> None:
        from capa import ScalarRows

        if isinstance(record, ScalarRows) and record.device == "daq" and lost[0] == 0:
            lost[0] = record.batch.num_rows
            return  # swallowed: neither written nor counted as dropped
        original(self, record)

    monkeypatch.setattr(BundleFiles, "write", lossy_write)
    exp = write_experiment(tmp_path, config={"duration_s": 0.5})
    result = run(host, exp, tmp_path / "runs")
    assert lost[0] > 0
    assert result.bundle_status == "verification_failed"
    assert result.integrity_status == "partial"
    assert result.exit_code() == 3
    bundle = result.bundle_path
    assert bundle is not None
    m = manifest(bundle)
    acc = m["counts"]["accounting"]
    assert acc["status"] == "mismatch"
    assert "daq -> scalars: emitted" in acc["problems"][0]
    assert f"({lost[0]:+d} rows unaccounted)" in acc["problems"][0]
    mismatch = [e for e in event_rows(bundle) if e[0] == "bundle.accounting_mismatch"]
    assert len(mismatch) == 1
    assert mismatch[0][1] == "error"


FAILING_READ = """
[[devices]]
name = "flaky"
adapter = "capa.sim.signals"
on_failure = "{policy}"
[devices.params]
resource = "flaky-port"
rate_hz = 20
fault = {{ kind = "error", after_s = 0.3 }}
[devices.params.signals]
x = {{ kind = "constant", value = 1.0 }}

[[channels]]
name = "flaky_x"
kind = "value"
unit = ""
source = {{ device = "flaky", field = "x" }}
"""


@pytest.mark.parametrize(
    ("policy", "code", "status"), [("warn", 0, "completed"), ("abort", 2, "crashed")]
)
def test_failing_adapter_read_follows_on_failure_and_stays_accounted(
    host, tmp_path, policy, code, status
):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 1.0},
        extra_devices=FAILING_READ.format(policy=policy),
    )
    result = run(host, exp, tmp_path / "runs")
    assert result.run_status == status, result.exit_reason
    assert result.exit_code() == code
    bundle = result.bundle_path
    assert bundle is not None
    acc = assert_accounted(bundle)
    assert acc["devices"]["flaky"]["scalars"]["written"] > 0  # before the fault
    errors = [e for e in event_rows(bundle) if e[0] == "worker_adapter_error"]
    assert "flaky: RuntimeError: flaky: injected read error" in errors[0][3]
    if policy == "abort":
        assert result.exit_reason == "device flaky: RuntimeError: flaky: injected read error"


# ------------------------------------------------------------------------- watchdogs
QUIET = """
[[devices]]
name = "quiet"
adapter = "test.falls_silent"
watchdog_s = 0.5
on_failure = "{policy}"
[devices.params]
rate_hz = 20
yield_for_s = 0.8

[[channels]]
name = "quiet_v"
kind = "voltage"
unit = "V"
source = {{ device = "quiet", field = "v" }}
"""


@pytest.mark.parametrize("policy", ["abort", "warn"])
def test_a_device_that_falls_silent_trips_its_watchdog(host, tmp_path, policy):
    exp = write_experiment(
        tmp_path, config={"duration_s": 3}, extra_devices=QUIET.format(policy=policy)
    )
    result = run(host, exp, tmp_path / "runs")
    bundle = result.bundle_path
    assert bundle is not None
    trips = [e for e in event_rows(bundle) if e[0] == "watchdog.tripped"]
    assert len(trips) == 1
    assert trips[0][1] == "error"
    assert "device quiet produced no sample for" in trips[0][3]
    m = manifest(bundle)
    assert m["counts"]["devices"]["quiet"]["watchdog_trips"] == 1
    assert m["counts"]["safety"]["watchdog_trips"] == {"quiet": 1}
    assert_accounted(bundle)
    if policy == "abort":
        assert result.exit_code() == 1
        assert result.exit_reason.startswith("watchdog: device quiet produced no sample")
    else:
        assert result.exit_code() == 0, result.exit_reason
