"""Wide sample tables: a streamed device's batch → one SampleRows batch, accounted per tick."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from capa import DeviceRecords, FrameReceipt, RunClock, SampleBatch, SampleRows, ScalarRows
from capa.config.hardware import ChannelConfig
from capa.errors import BundleError, EmissionError
from capa.runtime.channels import ChannelRegistry
from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
from capa.runtime.plan import ChannelPlan, DerivedPlan, DevicePlan
from capa.runtime.wide import streamed_devices
from capa.sim.signals import SimSignals

STREAM = "samples/daq"


class Sink:
    def __init__(self) -> None:
        self.records: list[object] = []
        self.fail: Exception | None = None

    def __call__(self, record: object) -> None:
        if self.fail is not None:
            raise self.fail
        self.records.append(record)


def plan(name, device, field, unit, *, slope=None, keep_raw=False, group=None):
    calibration = {"kind": "linear", "slope": slope} if slope is not None else {"kind": "identity"}
    config = ChannelConfig(
        name=name,
        kind="voltage",
        unit=unit,
        source={"device": device, "field": field},
        calibration=calibration,
        keep_raw=keep_raw,
        plot_group=group,
    )
    return ChannelPlan(
        name,
        device,
        field,
        unit,
        kind="voltage",
        mapping=config,
        keep_raw=keep_raw,
        raw_unit=unit,
        calibration=f"linear slope={slope}" if slope is not None else "identity",
        plot_group=group,
    )


CHANNELS = [
    plan("v0", "daq", "a", "V", slope=2.0, keep_raw=True, group="daq"),
    plan("v1", "daq", "b", "V"),
    plan("v2", "daq", "c", "V"),  # recorded; some batches lack its field
    plan("quiet", "daq", "d", "V"),  # not recorded: no column
    plan("oven", "oven", "pv", "degC"),  # a polled device: scalars
]
DERIVED = [
    DerivedPlan("sum01", "v0 + v1", {}, "V", inputs=("v0", "v1"), plot_group="daq"),
    DerivedPlan("oven_x2", "oven * 2", {}, "degC", inputs=("oven",)),
]
RECORDED = frozenset({"v0", "v1", "v2", "oven", "sum01", "oven_x2"})


def pipeline(sink: Sink, recorded: frozenset[str] = RECORDED) -> ChannelPipeline:
    return ChannelPipeline(
        devices=[],
        channels=CHANNELS,
        recording=RecordingPlan("record_all", recorded, frozenset()),
        registry=ChannelRegistry([*(c.name for c in CHANNELS), *(d.name for d in DERIVED)]),
        submit=sink,
        clock=RunClock(),
        derived=DERIVED,
        streamed={"daq"},
    )


def block(n: int = 4, *, with_c: bool = True, status=None, t0: int = 1000) -> SampleBatch:
    values = {"a": np.arange(n, dtype=float), "b": np.full(n, 10.0), "d": np.zeros(n)}
    if with_c:
        values["c"] = np.linspace(0, 1, n)
    t = t0 + np.arange(n, dtype=np.int64) * 10
    return SampleBatch(t, values, status if status is not None else "ok")


def counts(p: ChannelPipeline, device: str = "daq", stream: str = STREAM) -> dict:
    return p.ledger.snapshot()[device][stream]


def test_a_block_is_one_wide_batch_with_a_column_per_channel_raw_status_and_derived():
    sink = Sink()
    p = pipeline(sink)
    status = {"b": np.array(["ok", "overload", "ok", "sensor_fail"])}
    p.process("daq", block(4, status=status))
    (record,) = sink.records
    assert isinstance(record, SampleRows)
    assert (record.device, record.table) == ("daq", "daq")
    batch = record.batch
    assert batch.schema.names == [
        "t_mono_ns",
        "v0",
        "v0.raw",
        "v0.status",
        "v1",
        "v1.status",
        "v2",
        "v2.status",
        "sum01",
        "sum01.status",
    ]
    data = batch.to_pydict()
    assert data["t_mono_ns"] == [1000, 1010, 1020, 1030]
    assert data["v0"] == [0.0, 2.0, 4.0, 6.0]  # calibrated ×2
    assert data["v0.raw"] == [0.0, 1.0, 2.0, 3.0]
    assert data["v1.status"] == ["ok", "overload", "ok", "sensor_fail"]
    assert data["v0.status"] == ["ok"] * 4
    assert data["sum01"] == [10.0, 12.0, 14.0, 16.0]  # derived from calibrated values
    assert batch.schema.field("v1.status").type == pa.dictionary(pa.int32(), pa.string())
    assert batch.schema.field("t_mono_ns").nullable is False


def test_field_metadata_describes_each_column():
    sink = Sink()
    p = pipeline(sink)
    p.process("daq", block(2))
    schema = sink.records[0].batch.schema
    meta = {k.decode(): v.decode() for k, v in schema.field("v0").metadata.items()}
    assert meta == {
        "capa.channel": "v0",
        "capa.role": "value",
        "capa.unit": "V",
        "capa.raw_unit": "V",
        "capa.kind": "voltage",
        "capa.device": "daq",
        "capa.field": "a",
        "capa.calibration": "linear slope=2.0",
        "capa.plot_group": "daq",
    }
    assert schema.field("v0.raw").metadata[b"capa.role"] == b"raw"
    assert schema.field("v0.status").metadata[b"capa.role"] == b"status"
    assert schema.field("v0.status").metadata[b"capa.unit"] == b""
    derived = schema.field("sum01").metadata
    assert derived[b"capa.device"] == b"derived"
    assert derived[b"capa.plot_group"] == b"daq"
    assert schema.metadata[b"capa.table"] == b"samples"
    assert schema.metadata[b"capa.device"] == b"daq"
    assert schema.metadata[b"capa.bundle_schema_version"] == b"2"


def test_schema_is_fixed_for_the_run_and_a_missing_field_is_null():
    sink = Sink()
    p = pipeline(sink)
    p.process("daq", block(3))
    p.process("daq", block(2, with_c=False))
    first, second = (r.batch for r in sink.records)
    assert first.schema.equals(second.schema, check_metadata=True)
    data = second.to_pydict()
    assert data["v2"] == [None, None]
    assert data["v2.status"] == [None, None]
    assert data["v1"] == [10.0, 10.0]
    assert counts(p) == {"emitted": 5, "written": 0, "dropped": {}}  # ticks, not cells


def test_a_new_status_extends_the_dictionary_without_changing_the_schema():
    sink = Sink()
    p = pipeline(sink)
    p.process("daq", block(2, status={"a": np.array(["ok", "cold_junction_open"])}))
    batch = sink.records[0].batch
    assert batch.to_pydict()["v0.status"] == ["ok", "cold_junction_open"]
    assert batch.schema.field("v0.status").type == pa.dictionary(pa.int32(), pa.string())


def test_polled_devices_stay_long_in_scalars_with_the_channel_description():
    sink = Sink()
    p = pipeline(sink)
    p.process("oven", SampleBatch(np.array([5, 6]), {"pv": np.array([20.0, 21.0])}))
    (record,) = sink.records
    assert isinstance(record, ScalarRows)
    data = record.batch.to_pydict()
    assert data["channel"] == ["oven", "oven_x2", "oven", "oven_x2"]
    assert data["value"] == [20.0, 40.0, 21.0, 42.0]
    assert p.ledger.snapshot()["oven"]["scalars"]["emitted"] == 4
    described = json.loads(record.batch.schema.metadata[b"capa.channels"])
    # Only what scalars can hold: the polled device's channels and what it triggers.
    assert sorted(described) == ["oven", "oven_x2"]
    assert described["oven"]["unit"] == "degC"
    assert described["oven"]["device"] == "oven"
    assert described["oven_x2"]["device"] == "derived"
    channel_field = record.batch.schema.field("channel")
    assert json.loads(channel_field.metadata[b"capa.channels"]) == described


def test_a_streamed_device_with_nothing_recorded_submits_nothing_and_counts_nothing():
    sink = Sink()
    p = pipeline(sink, recorded=frozenset({"oven"}))
    p.process("daq", block(3))
    assert sink.records == []
    assert "daq" not in p.ledger.snapshot()
    assert p.wide == {}


def test_invalid_block_counts_its_ticks_invalid_emission():
    sink = Sink()
    p = pipeline(sink)
    bad = SampleBatch(np.arange(3, dtype=np.int64), {"a": np.ones(3), "b": np.ones(2)})
    with pytest.raises(EmissionError, match="field 'b' has 2 values for 3 times"):
        p.process("daq", bad)
    assert sink.records == []
    assert counts(p) == {"emitted": 3, "written": 0, "dropped": {"invalid_emission": 3}}


def test_writer_refusal_counts_the_ticks_writer_unavailable():
    sink = Sink()
    sink.fail = BundleError("bundle writer of run x is closed")
    p = pipeline(sink)
    with pytest.raises(BundleError):
        p.process("daq", block(6))
    assert counts(p) == {"emitted": 6, "written": 0, "dropped": {"writer_unavailable": 6}}


def test_after_seal_blocks_are_counted_after_stop_in_their_wide_stream():
    sink = Sink()
    p = pipeline(sink)
    p.process("daq", block(2))
    assert p.seal(1.0)
    p.process("daq", block(7))
    p.process("daq", DeviceRecords("fam", {"t": [1]}))  # not recorded: nothing
    p.process("daq", FrameReceipt(0, 1, "t", 0.0))
    assert len(sink.records) == 1
    assert counts(p) == {"emitted": 9, "written": 0, "dropped": {"after_stop": 7}}


def test_streamed_devices_are_decided_by_the_adapter_instance():
    def sim(mode: str) -> SimSignals:
        params = SimSignals.Params.model_validate(
            {"mode": mode, "signals": {"a": {"kind": "constant"}}}
        )
        return SimSignals("x", params)

    assert streamed_devices([("daq", sim("block")), ("oven", sim("polled"))]) == {"daq"}


def test_the_conductor_plan_carries_calibration_and_plot_group(tmp_path):
    from capa import PluginHost
    from capa.config.validate import validate_experiment
    from capa.runtime.build import plan_from_report

    (tmp_path / "rig.toml").write_text(
        """
name = "r"
[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
mode = "block"
[devices.params.signals]
hf = { kind = "constant", unit = "mV", value = 1.0 }
[[channels]]
name = "flux"
kind = "heat_flux"
unit = "mV"
derived_unit = "kW/m2"
source = { device = "daq", field = "hf" }
calibration = { kind = "linear", slope = 4.2 }
plot_group = "heat flux"
"""
    )
    (tmp_path / "e.yaml").write_text(
        "hardware: rig.toml\nprocedure: {id: capa.builtin.free_run}\n"
        "operator: {id: t}\nsample: {id: S}\n"
    )
    host = PluginHost(builtin=True)
    host.load(entry_points=False)
    report = validate_experiment(tmp_path / "e.yaml", host)
    assert report.ok, report.problems
    (flux,) = plan_from_report(report, host).channels
    assert (flux.unit, flux.raw_unit) == ("kW/m2", "mV")
    assert flux.calibration == "linear slope=4.2"
    assert flux.plot_group == "heat flux"


def test_devices_plan_unused_by_pipeline_layout():
    # The layout comes from ``streamed``, not from DevicePlan: a polled adapter class
    # whose name is listed as streamed is recorded wide (the conductor asks instances).
    params = SimSignals.Params.model_validate({"signals": {"a": {"kind": "constant"}}})
    sink = Sink()
    p = ChannelPipeline(
        devices=[DevicePlan("daq", SimSignals, params, "sim:x")],
        channels=[plan("v", "daq", "a", "V")],
        recording=RecordingPlan("record_all", frozenset({"v"}), frozenset()),
        registry=ChannelRegistry(["v"]),
        submit=sink,
        clock=RunClock(),
        streamed={"daq"},
    )
    p.process("daq", SampleBatch(np.array([1]), {"a": np.array([3.0])}))
    assert isinstance(sink.records[0], SampleRows)


def test_wide_rows_through_a_real_session_are_written_or_counted_writer_abandoned(tmp_path):
    from capa.runtime.session import RealRunSession
    from capa.runtime.state import RunOutcome

    session = RealRunSession(tmp_path / "runs", flush_interval_s=0.05)
    session.open(RunClock(), {})
    p = pipeline(Sink())
    p._submit = session.submit  # the conductor's wiring
    p.ledger = session.ledger
    p.process("daq", block(3))
    session.abandon_writer()  # the saturation monitor gave up on the writer
    p.process("daq", block(5))
    c = session.ledger.snapshot()["daq"][STREAM]
    assert c["emitted"] == 8
    assert c["dropped"] == {"writer_abandoned": 5}
    session.close(RunOutcome.CRASHED, "saturation_deadline: test", {})
    acc = json.loads((session.bundle_path / "manifest.json").read_text())["counts"]["accounting"]
    daq = acc["devices"]["daq"][STREAM]
    assert daq["dropped"]["writer_abandoned"] == 5
    # The first block was written, or still queued when the writer was given up on.
    assert daq["written"] + daq["dropped"].get("abandoned", 0) == 3


def test_wide_rows_the_writer_cannot_store_are_counted_rejected(tmp_path):
    from capa.runtime.session import RealRunSession
    from capa.runtime.state import RunOutcome

    session = RealRunSession(tmp_path / "runs", flush_interval_s=0.05)
    session.open(RunClock(), {})
    p = pipeline(Sink())
    p._submit = session.submit
    p.ledger = session.ledger
    p.process("daq", block(3))
    # A batch whose schema is not the table's (a buggy producer): refused, counted.
    odd = pa.RecordBatch.from_pydict({"t_mono_ns": pa.array([1, 2], pa.int64())})
    session.submit(SampleRows(odd, "daq", "daq"))
    session.ledger.emitted("daq", STREAM, 2)
    result = session.close(RunOutcome.COMPLETED, "", {})
    assert result is not None
    acc = json.loads((session.bundle_path / "manifest.json").read_text())["counts"]["accounting"]
    daq = acc["devices"]["daq"][STREAM]
    assert daq == {"emitted": 5, "written": 3, "dropped": {"rejected": 2}}
    assert acc["status"] == "ok", acc
    assert acc["files"][STREAM] == {"rows_in_file": 3, "written": 3}


def test_a_status_first_seen_mid_run_reaches_the_sealed_wide_table(tmp_path):
    import pyarrow.parquet as pq

    from capa.runtime.session import RealRunSession
    from capa.runtime.state import RunOutcome

    session = RealRunSession(tmp_path / "runs", flush_interval_s=0.05)
    session.open(RunClock(), {})
    p = pipeline(Sink())
    p._submit = session.submit
    p.ledger = session.ledger
    p.process("daq", block(2))
    p.process("daq", block(2, t0=2000, status={"a": np.array(["cold_junction_open", "ok"])}))
    session.close(RunOutcome.COMPLETED, "", {})
    assert session.bundle_path is not None
    (part,) = (session.bundle_path / "samples" / "daq").glob("*.parquet")
    table = pq.ParquetFile(part).read()
    assert table.column("v0.status").to_pylist() == ["ok", "ok", "cold_junction_open", "ok"]
    assert table.column("v1.status").to_pylist() == ["ok"] * 4
