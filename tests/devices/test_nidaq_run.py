"""capa-nidaq through `capa run`: every sample lands, overruns are events and counted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from .helpers import CapaProcess, event_rows, manifest, run_rig, write_rig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def daq_rig(device: str, n: int, rate: float, block: int, extra: str = "") -> str:
    chans = ",\n".join(
        f'  {{ kind = "thermocouple", physical_channel = "cDAQ1Mod1/ai{i}", name = "tc{i}" }}'
        if i % 2 == 0
        else f'  {{ kind = "voltage", physical_channel = "cDAQ1Mod2/ai{i}", name = "v{i}" }}'
        for i in range(n)
    )
    names = [f"tc{i}" if i % 2 == 0 else f"v{i}" for i in range(n)]
    kinds = {"tc": ("temperature", "degC"), "v": ("voltage", "V")}
    channels = "\n".join(
        f'[[channels]]\nname = "{c}"\nkind = "{kinds[c.rstrip("0123456789")][0]}"\n'
        f'unit = "{kinds[c.rstrip("0123456789")][1]}"\n'
        f'source = {{ device = "daq", field = "{c}" }}\n'
        for c in names
    )
    return f"""
name = "daq-rig"
[[devices]]
name = "daq"
adapter = "nidaq.task"
[devices.params]
device = "{device}"
{extra}
timing = {{ sample_rate_hz = {rate}, block_size = {block} }}
channels = [
{chans}
]

{channels}
"""


def per_channel(table, name: str):
    return table.filter(pc.equal(pc.cast(table.column("channel"), "string"), name))


def wide_table(bundle: Path):
    """The hardware-clocked DAQ's wide table (``samples/daq/part-*.parquet``)."""
    import pyarrow as pa

    parts = sorted((bundle / "samples" / "daq").glob("part-*.parquet"))
    assert parts, "a hardware-clocked task is recorded wide, in samples/daq/"
    assert (
        not (bundle / "scalars.parquet").exists()
        or not pq.read_table(bundle / "scalars.parquet").num_rows
    ), "no DAQ sample in the long table"
    return pa.concat_tables([pq.read_table(p) for p in parts])


def test_sim_8_channels_at_10ks_for_30s_lands_every_sample(tmp_path):
    proc = CapaProcess(tmp_path)
    exp = write_rig(tmp_path, daq_rig("sim://?seed=7", 8, 10_000, 1000), duration_s=30)
    bundle, _ = run_rig(proc, exp)
    m = manifest(bundle)
    worker = m["queue_health"]["runtime"]["workers"]["daqmx-sim:cDAQ1Mod1"]
    emitted = worker["samples"]
    assert emitted >= 295_000  # ~300 000 samples per channel in 30 s
    assert worker["read_errors"] == 0
    assert m["counts"]["dropped"]["rows"] == 0
    table = wide_table(bundle)
    t = table.column("t_mono_ns").to_numpy()
    assert len(t) == emitted, f"{len(t)} rows, device emitted {emitted}"
    assert (np.diff(t) == 100_000).all(), "not on the 10 kS/s clock"
    for i in range(8):
        name = f"tc{i}" if i % 2 == 0 else f"v{i}"
        assert table.column(name).null_count == 0, f"{name}: missing samples"
        values = table.column(name).to_numpy()
        if name.startswith("tc"):
            assert abs(values.mean() - 22.0) < 0.05  # ambient
    summary = event_rows(bundle, "nidaq.summary")
    assert len(summary) == 1
    assert summary[0]["metadata"]["samples_per_channel"] == emitted
    assert summary[0]["metadata"]["overruns"] == 0
    assert not event_rows(bundle, "nidaq.overrun")


def test_sim_injected_overrun_is_an_event_and_counted(tmp_path):
    proc = CapaProcess(tmp_path)
    exp = write_rig(
        tmp_path, daq_rig("sim://?overrun_at_s=1&overrun_blocks=5", 2, 5000, 500), duration_s=3
    )
    bundle, _ = run_rig(proc, exp)
    overruns = event_rows(bundle, "nidaq.overrun")
    assert len(overruns) == 1
    ev = overruns[0]
    assert ev["severity"] == "warning"
    assert ev["source"].endswith("daq")
    assert ev["metadata"]["overruns"] == 1
    lost = ev["metadata"]["samples_lost_per_channel"]
    assert lost >= 2490  # five blocks of 500 (the estimate comes from the time gap)
    summary = event_rows(bundle, "nidaq.summary")[0]["metadata"]
    assert summary["overruns"] == 1
    assert summary["samples_lost_per_channel"] == lost
    counted = manifest(bundle)["counts"]["devices"]["daq"]  # and counted in the manifest
    assert counted["overruns"] == 1
    assert counted["samples_lost_per_channel"] == lost
    table = wide_table(bundle)
    t = table.column("t_mono_ns").to_numpy()
    assert len(t) == summary["samples_per_channel"]
    assert table.column("tc0").null_count == 0
    gaps = np.diff(t)
    assert (gaps > 0).all()
    assert (gaps != 200_000).sum() == 1  # the one visible hole is the overrun


def test_sim_polled_mode_records_every_read(tmp_path):
    """Polled mode (no ``timing``) once emitted 0-d columns: nothing was recorded, exit 0."""
    proc = CapaProcess(tmp_path)
    rig = daq_rig("sim://?seed=3", 2, 1, 1).replace(
        "timing = { sample_rate_hz = 1, block_size = 1 }", "rate_hz = 20"
    )
    assert "timing" not in rig
    exp = write_rig(tmp_path, rig, duration_s=2)
    bundle, s = run_rig(proc, exp)
    assert s["run_status"] == "completed"
    m = manifest(bundle)
    rows = m["counts"]["scalars"]["channels"]
    assert set(rows) == {"tc0", "v1"}
    assert rows["tc0"] == rows["v1"]
    assert 25 <= rows["tc0"] <= 45  # ~20 Hz for 2 s
    acc = m["counts"]["accounting"]
    assert acc["status"] == "ok"
    assert acc["devices"]["daq"]["scalars"] == {
        "emitted": 2 * rows["tc0"],
        "written": 2 * rows["tc0"],
        "dropped": {},
    }
    assert not event_rows(bundle, "device.emission_rejected")


def load_fake_server():
    path = REPO / "packages" / "capa-nidaq" / "tests" / "fake_ni_server.py"
    spec = importlib.util.spec_from_file_location("capa_nidaq_fake_ni_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_real_backend_through_capa_run_against_the_fake_grpc_server(tmp_path):
    pytest.importorskip("grpc", reason="nidaqmx[grpc] (a test dependency) is not installed")
    fake = load_fake_server()
    with fake.FakeServer(fake.FakeBoard(overrun_at_read=6)) as server:
        proc = CapaProcess(tmp_path)
        rig = daq_rig("cDAQ1", 2, 2000, 200, extra=f'grpc_server = "{server.address}"')
        bundle, _ = run_rig(proc, write_rig(tmp_path, rig, duration_s=2))
        calls = set(server.service.calls)
    assert {"CreateTask", "CfgSampClkTiming", "StartTask", "ReadAnalogF64", "ClearTask"} <= calls
    values = wide_table(bundle).column("tc0").to_numpy()
    assert len(values) >= 1000
    # Five blocks before the overrun (values k*10), then the restarted task from 0 again.
    assert np.array_equal(values[:1000], np.arange(1000) * 10)
    assert np.array_equal(values[1000:], np.arange(len(values) - 1000) * 10)
    assert len(event_rows(bundle, "nidaq.overrun")) == 1
