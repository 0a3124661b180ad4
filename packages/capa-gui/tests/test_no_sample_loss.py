"""A run recorded with the console open loses no sample.

The same fixed-duration signals run (a 10 kS/s two-channel DAQ in blocks and a 10 Hz
polled controller) is recorded headless and then with the console serving it to a page
that never reads its stream, and with a display bridge so small that it must drop.
Both bundles: dropped rows 0, every sample each device produced is a row, and the row
counts agree (up to the one block or poll tick by which a wall-clock stop can differ).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest

import capa.embed
from capa.runtime import run_headless

from .conftest import manifest

RIG = """\
name = "loss-check"

[[devices]]
name = "furnace"
adapter = "capa.sim.signals"
[devices.params]
resource = "furnace"
mode = "polled"
rate_hz = 10
writable = ["setpoint"]
[devices.params.signals]
setpoint = { kind = "constant", unit = "degC", value = 25.0 }
process_value = { kind = "sine", unit = "degC", offset = 25.0, amplitude = 1.0, period_s = 2.0 }

[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
resource = "daq"
mode = "block"
sample_rate_hz = 10000
block_size = 500
[devices.params.signals]
a = { kind = "sine", unit = "V", offset = 0.0, amplitude = 1.0, period_s = 0.5, noise_sigma = 0.01 }
b = { kind = "noise", unit = "V", mean = 1.0, sigma = 0.01 }

[[channels]]
name = "sp"
kind = "temperature"
unit = "degC"
source = { device = "furnace", field = "setpoint" }
[[channels]]
name = "pv"
kind = "temperature"
unit = "degC"
source = { device = "furnace", field = "process_value" }
[[channels]]
name = "a"
kind = "voltage"
unit = "V"
source = { device = "daq", field = "a" }
plot_group = "daq"
[[channels]]
name = "b"
kind = "voltage"
unit = "V"
source = { device = "daq", field = "b" }
plot_group = "daq"
"""

EXPERIMENT = """\
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config: {duration_s: 3}
operator: {id: tester}
sample: {id: LOSS-1}
"""

DEVICE_CHANNELS = {"furnace": ("sp", "pv"), "daq": ("a", "b")}
TOLERANCE = {"furnace": 2, "daq": 2 * 500}  # one poll tick / block either side


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    (tmp_path / "rig.toml").write_text(RIG)
    path = tmp_path / "signals.yaml"
    path.write_text(EXPERIMENT)
    return path


def _accounting(bundle: Path) -> dict[str, Any]:
    m = manifest(bundle)
    assert m["run_status"] == "completed"
    assert m["bundle_status"] == "sealed"
    assert m["counts"]["dropped"]["rows"] == 0
    rows = dict(m["counts"]["scalars"]["channels"])
    # The block DAQ is recorded wide: its channels' rows are the non-null cells of their
    # columns in samples/daq/ (read from the files themselves).
    for part in sorted((bundle / "samples" / "daq").glob("part-*.parquet")):
        table = pq.read_table(part, columns=list(DEVICE_CHANNELS["daq"]))
        for ch in DEVICE_CHANNELS["daq"]:
            rows[ch] = rows.get(ch, 0) + len(table) - table.column(ch).null_count
    workers = m["queue_health"]["runtime"]["workers"]
    samples = {w["devices"][0]: w["samples"] for w in workers.values()}
    for device, channels in DEVICE_CHANNELS.items():
        for ch in channels:
            # every sample time the device produced is a row of each of its channels
            assert rows[ch] == samples[device], (ch, rows[ch], samples[device])
    return rows


def test_console_open_loses_no_sample(experiment, tmp_path, serve):
    host = capa.embed.load_host()
    report = capa.embed.validate_experiment(experiment, host)
    plan = capa.embed.plan_from_report(report, host)

    async def headless() -> Any:
        return await run_headless(plan, runs_root=tmp_path / "headless", host=host)

    alone = anyio.run(headless)
    rows_alone = _accounting(Path(str(alone.bundle_path)))

    running = serve(experiment)
    running.rig.bridge.capacity = 1  # far too small: the display must drop, never the run
    # A page that opens the live stream and then never reads it.
    host_port = running.base.removeprefix("http://")
    stalled = socket.create_connection(tuple(host_port.rsplit(":", 1)))  # type: ignore[arg-type]
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /api/stream?token={running.token} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
    )
    try:
        running.rig.start_run()
        running.rig.wait_run(timeout=60)
    finally:
        stalled.close()
    result = running.rig.last_result
    assert result is not None
    rows_console = _accounting(Path(str(result.bundle_path)))
    assert running.rig.bridge.dropped > 0  # the display did drop (so the check means something)

    for device, channels in DEVICE_CHANNELS.items():
        for ch in channels:
            assert abs(rows_console[ch] - rows_alone[ch]) <= TOLERANCE[device], (
                ch,
                rows_console[ch],
                rows_alone[ch],
            )
