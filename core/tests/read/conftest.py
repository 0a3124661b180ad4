"""Bundles to read: version 1 as today's writer makes it, version 2 as the spec says."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from capa import DeviceRecords, FrameReceipt, ScalarRows
from capa.bundle.schema import scalar_batch
from capa.bundle.writer import BundleWriter

from .v2fixture import write_v2_bundle

RIG_V1 = b"""
name = "v1-rig"

[[devices]]
name = "furnace"
adapter = "watlow.ezzone_pm"

[[channels]]
name = "furnace_t"
kind = "temperature"
unit = "degC"
source = { device = "furnace", field = "process_value" }
plot_group = "temperature"

[[channels]]
name = "heat_flux"
kind = "heat_flux"
unit = "V"
derived_unit = "kW/m2"
source = { device = "daq", field = "hf_gauge" }
calibration = { kind = "linear", slope = 5000.0, intercept = 0.0 }
keep_raw = true
plot_group = "heat flux"

[[derived]]
name = "rise"
expression = "furnace_t - 20"
unit = "degC"
kind = "temperature"
"""


@pytest.fixture
def v1_bundle(tmp_path: Path) -> Path:
    """A sealed version-1 bundle written by capa's current writer: 10 s of two channels."""
    root = tmp_path / "runs"
    writer = BundleWriter.open(
        root,
        flush_interval_s=0.05,
        config_files={"rig.toml": RIG_V1, "experiment.yaml": b"procedure: x\n"},
        manifest_fields={"recording": {"channels": ["furnace_t", "heat_flux", "rise"]}},
        use_catalog=False,
    )
    t = pa.array([i * 100_000_000 for i in range(100)], pa.int64())  # 10 Hz for 10 s
    values = pa.array([20.0 + i * 0.1 for i in range(100)], pa.float64())
    writer.submit(
        ScalarRows(
            scalar_batch(t, "furnace_t", values, unit="degC", source_field="furnace.process_value")
        )
    )
    writer.submit(
        ScalarRows(
            scalar_batch(
                t,
                "heat_flux",
                values,
                unit="kW/m2",
                raw_value=values.to_numpy() / 5000,
                source_field="daq.hf_gauge",
            )
        )
    )
    writer.submit(ScalarRows(scalar_batch(t, "rise", values, unit="degC", source_field="derived")))
    # Sartorius records as version 1 wrote them: no t_mono_ns, raw as hex text.
    writer.submit(
        DeviceRecords(
            "sartorius",
            {
                "t_request_ns": [5, 1_000_000_005],
                "t_receive_ns": [10, 1_000_000_010],
                "raw": [b"+ 12.5 g\r\n".hex(), b"+ 12.4 g\r\n".hex()],
            },
        )
    )
    writer.submit(FrameReceipt(0, 10, "2026-01-01T00:00:00+00:00", 0.002, device="cam"))
    writer.emit("method.step.started", "heat", source="method")
    writer.emit("conductor.loop_lag", "late", severity="warning", source="conductor")
    result = writer.close("completed")
    assert result.ok
    return writer.bundle


@pytest.fixture
def v2_bundle(tmp_path: Path) -> Path:
    return write_v2_bundle(tmp_path / "runs")
