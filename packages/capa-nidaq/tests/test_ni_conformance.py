"""API conformance of the real backend: every nidaqmx call it makes, over gRPC.

The NI driver cannot be installed here, so the real ``nidaqmx`` package runs against a
fake NI gRPC Device Server (``fake_ni_server``) that implements only the RPCs the backend
needs; anything else fails with UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from capa import DeviceError
from capa_nidaq.adapter import NidaqTask
from capa_nidaq.backend import DeviceLostError, OverrunError
from capa_nidaq.discovery import discover_devices, handshake
from capa_nidaq.ni import NiBackend, grpc_options
from capa_nidaq.params import NidaqParams

from .conftest import Collector

# The fake server needs grpcio, from the workspace's test dependency nidaqmx[grpc].
pytest.importorskip("grpc", reason="nidaqmx[grpc] (a test dependency) is not installed")

from .fake_ni_server import FakeBoard, FakeServer

CHANNELS = [
    {
        "kind": "thermocouple",
        "physical_channel": "cDAQ1Mod1/ai0",
        "name": "tc0",
        "type": "J",
        "cjc_source": "constant",
        "cjc_value": 23.5,
    },
    {
        "kind": "voltage",
        "physical_channel": "cDAQ1Mod2/ai5",
        "name": "v5",
        "terminal_config": "diff",
    },
]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s


def params(server: FakeServer, **kw) -> NidaqParams:
    kw.setdefault("channels", CHANNELS)
    return NidaqParams.model_validate({"device": "cDAQ1", "grpc_server": server.address, **kw})


def test_discover_lists_devices_through_nidaqmx_system(server):
    found = discover_devices("nidaq.task", server.address)
    assert [(d.resource_id, d.description) for d in found] == [
        ("daqmx:cDAQ1Mod1", "NI 9213 (serial 1A2B3C)"),
        ("daqmx:cDAQ1Mod2", "NI 9205 (serial BADF00D)"),
    ]
    assert found[0].params == {"device": "cDAQ1Mod1", "grpc_server": server.address}
    calls = set(server.service.calls)
    assert {"GetSystemInfoAttributeString", "GetDeviceAttributeString"} <= calls
    assert "GetDeviceAttributeUInt32" in calls


def test_handshake_identifies_the_modules_of_the_task(server):
    result = handshake(params(server))
    assert result.ok, result.detail
    assert result.identity["cDAQ1Mod1"]["product_type"] == "NI 9213"
    assert result.identity["cDAQ1Mod2"]["serial"] == "BADF00D"
    missing = handshake(params(server, channels=[{**CHANNELS[0], "physical_channel": "Dev7/ai0"}]))
    assert not missing.ok
    assert "Dev7 not found" in missing.detail
    assert "cDAQ1Mod1" in missing.detail


def test_task_setup_carries_the_channel_configuration(server):
    backend = NiBackend("daq", params(server, timing={"sample_rate_hz": 3000, "block_size": 300}))
    backend.open()
    try:
        task = next(iter(server.service.tasks.values()))
        assert task.channels == [
            ("cDAQ1Mod1/ai0", "tc0", "thermocouple"),
            ("cDAQ1Mod2/ai5", "v5", "voltage"),
        ]
        rate = backend.start()
        assert rate == pytest.approx(1e8 / round(1e8 / 3000))  # the coerced rate is used
        assert task.buffer == 300 * 20
    finally:
        backend.close()
    assert server.service.tasks == {}  # cleared
    calls = server.service.calls
    for rpc in ("CreateTask", "CreateAIThrmcplChan", "CreateAIVoltageChan", "CfgSampClkTiming"):
        assert rpc in calls
    assert calls[-2:] == ["StopTask", "ClearTask"]


def test_block_reads_land_in_numpy_buffers_in_order(server):
    backend = NiBackend("daq", params(server, timing={"sample_rate_hz": 2000, "block_size": 200}))
    backend.open()
    try:
        backend.start()
        blocks = []
        for _ in range(3):
            out = np.empty((2, 200))
            assert backend.read_block(out, 5.0) == 200
            blocks.append(out)
        assert backend.available() >= 0
    finally:
        backend.close()
    data = np.concatenate(blocks, axis=1)
    k = np.arange(600)
    assert np.array_equal(data[0], k * 10)  # channel 0: every sample, none repeated
    assert np.array_equal(data[1], k * 10 + 1)
    assert "ReadAnalogF64" in server.service.calls
    assert "GetReadAttributeUInt32" in server.service.calls


def test_overwritten_samples_raise_an_overrun():
    with FakeServer(FakeBoard(overrun_at_read=2)) as server:
        backend = NiBackend(
            "daq", params(server, timing={"sample_rate_hz": 2000, "block_size": 100})
        )
        backend.open()
        try:
            backend.start()
            backend.read_block(np.empty((2, 100)), 5.0)
            with pytest.raises(OverrunError, match="-200279"):
                backend.read_block(np.empty((2, 100)), 5.0)
            assert "GetErrorString" in server.service.calls
        finally:
            backend.close()


def test_a_device_gone_raises_device_lost():
    with FakeServer(FakeBoard(lose_device_at_read=1)) as server:
        backend = NiBackend(
            "daq", params(server, timing={"sample_rate_hz": 1000, "block_size": 10})
        )
        backend.open()
        try:
            backend.start()
            with pytest.raises(DeviceLostError, match="-201003"):
                backend.read_block(np.empty((2, 10)), 5.0)
        finally:
            backend.close()


def test_on_demand_read_one_sample(server):
    backend = NiBackend("daq", params(server))
    backend.open()
    try:
        backend.start()
        out = np.empty(2)
        backend.read_one(out, 1.0)
        assert out.tolist() == [0.0, 1.0]
        backend.read_one(out, 1.0)
        assert out.tolist() == [10.0, 11.0]
    finally:
        backend.close()
    assert "CfgSampClkTiming" not in server.service.calls  # on demand: no sample clock


def test_a_missing_physical_channel_is_a_device_error_at_open(server):
    bad = params(server, channels=[{**CHANNELS[0], "physical_channel": "cDAQ1Mod1/ai99"}])
    with pytest.raises(DeviceError, match="does not exist"):
        NiBackend("daq", bad).open()
    assert server.service.tasks == {}  # the half-built task was cleared


def test_an_rpc_the_fake_server_lacks_fails_loudly(server):
    import grpc
    import nidaqmx

    options = grpc_options(server.address)
    try:
        with nidaqmx.Task("probe", grpc_options=options) as task:
            with pytest.raises(nidaqmx.errors.RpcError) as info:
                _ = task.in_stream.input_buf_size  # GetBufferAttributeUInt32: not implemented
            assert info.value.rpc_code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        options.grpc_channel.close()


def test_the_adapter_streams_from_the_real_backend(server):
    adapter = NidaqTask("daq", params(server, timing={"sample_rate_hz": 1000, "block_size": 100}))
    ctx = Collector()

    async def body() -> None:
        await adapter.open()
        await adapter.start(ctx)
        task = asyncio.ensure_future(adapter.stream(ctx))
        await asyncio.to_thread(ctx.wait_batches, 3)
        await adapter.stop()
        await asyncio.wait_for(task, 5)
        await adapter.close()

    asyncio.run(body())
    tc0 = ctx.column("tc0")
    assert np.array_equal(tc0, np.arange(len(tc0)) * 10)
    assert (np.diff(ctx.times()) == 1_000_000).all()
    assert ctx.events("nidaq.summary")[0].metadata["overruns"] == 0


def test_the_adapter_recovers_from_an_overrun_by_restarting_the_task():
    with FakeServer(FakeBoard(overrun_at_read=3)) as server:
        adapter = NidaqTask(
            "daq", params(server, timing={"sample_rate_hz": 2000, "block_size": 100})
        )
        ctx = Collector()

        async def body() -> None:
            await adapter.open()
            await adapter.start(ctx)
            task = asyncio.ensure_future(adapter.stream(ctx))
            await asyncio.to_thread(ctx.wait_batches, 5)
            await adapter.stop()
            await asyncio.wait_for(task, 5)
            await adapter.close()

        asyncio.run(body())
        overrun = ctx.events("nidaq.overrun")
        assert len(overrun) == 1
        assert overrun[0].metadata["overruns"] == 1
        assert server.service.calls.count("StartTask") == 2  # restarted once
        tc0 = ctx.column("tc0")
        restart = 200  # two blocks before the overrun, then the board counts from 0 again
        assert np.array_equal(tc0[:restart], np.arange(restart) * 10)
        assert np.array_equal(tc0[restart:], np.arange(len(tc0) - restart) * 10)
        assert (np.diff(ctx.times()) > 0).all()


def driver_installed() -> bool:
    import nidaqmx.system

    try:
        _ = nidaqmx.system.System.local().driver_version
    except nidaqmx.errors.DaqNotFoundError:
        return False
    return True


no_driver = pytest.mark.skipif(driver_installed(), reason="this machine has NI-DAQmx")


@no_driver
def test_without_the_driver_everything_says_so_in_one_line():
    from capa_nidaq.ni import DRIVER_MISSING, DriverMissingError

    local = NidaqParams.model_validate({"device": "Dev1", "channels": [CHANNELS[1]]})
    with pytest.raises(DriverMissingError, match=DRIVER_MISSING):
        discover_devices("nidaq.task", None)
    result = asyncio.run(NidaqTask.handshake(local))
    assert not result.ok
    assert result.detail == DRIVER_MISSING
    with pytest.raises(DriverMissingError, match=DRIVER_MISSING):
        asyncio.run(NidaqTask("d", local).open())


@no_driver
def test_capa_devices_discover_notes_the_missing_driver(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "capa", "devices", "discover", "--adapter", "nidaq.task"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NI-DAQmx driver not installed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
