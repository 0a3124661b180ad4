"""The channel pipeline: one sample batch → one time-ordered scalars batch."""

from __future__ import annotations

import numpy as np

import capa
from capa.config.hardware import ChannelConfig
from capa.runtime.channels import ChannelRegistry
from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
from capa.runtime.plan import ChannelPlan, DevicePlan
from capa.sim.signals import SimSignals


def channel(name, field, unit, *, slope=1.0, keep_raw=False, field_unit=""):
    config = ChannelConfig(
        name=name,
        kind="x",
        unit=unit,
        source={"device": "dev", "field": field},
        calibration={"kind": "linear", "slope": slope, "intercept": 0.0},
        keep_raw=keep_raw,
    )
    return ChannelPlan(
        name, "dev", field, unit, mapping=config, keep_raw=keep_raw, field_unit=field_unit
    )


def test_batch_is_time_major_calibrated_and_keeps_raw_where_asked():
    params = SimSignals.Params.model_validate({"signals": {"a": {"kind": "constant"}}})
    channels = [
        channel("volts", "a", "V", slope=2.0, keep_raw=True),
        channel("temp", "b", "degC", field_unit="degF"),
        channel("ignored", "c", "V"),
    ]
    out: list = []
    registry = ChannelRegistry(c.name for c in channels)
    pipe = ChannelPipeline(
        devices=[DevicePlan("dev", SimSignals, params, "sim:x")],
        channels=channels,
        recording=RecordingPlan("record_all", frozenset({"volts", "temp"}), frozenset()),
        registry=registry,
        submit=out.append,
        clock=capa.RunClock(),
    )
    batch = capa.SampleBatch(
        t_mono_ns=np.array([10, 20, 30]),
        values={"a": np.array([1.0, 2.0, 3.0]), "b": np.array([32.0, 212.0, 50.0])},
        status={"a": "ok", "b": np.array(["ok", "overload", "ok"])},
    )
    pipe.process("dev", batch)
    (rows,) = out
    table = rows.batch.to_pydict()
    assert table["t_mono_ns"] == [10, 10, 20, 20, 30, 30]  # sorted within the batch
    assert table["channel"] == ["volts", "temp"] * 3
    assert table["value"] == [2.0, 0.0, 4.0, 100.0, 6.0, 10.0]  # ×2; degF → degC
    assert table["raw_value"] == [1.0, None, 2.0, None, 3.0, None]
    assert table["status"] == ["ok", "ok", "ok", "overload", "ok", "ok"]
    assert table["source_field"] == ["dev.a", "dev.b"] * 3
    assert table["unit"] == ["V", "degC"] * 3
    # "ignored" is bound to a field the batch lacks; registry has the last values.
    assert registry.latest("volts") == 6.0
    assert registry.latest("temp") == 10.0
    assert registry.latest("ignored") is None
