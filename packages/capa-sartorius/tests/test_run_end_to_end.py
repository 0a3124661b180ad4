"""A headless ``capa run`` records a sim:// balance: samples and native device records."""

import itertools
import subprocess
import sys
import textwrap

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RIG = """
name = "balance-rig"

[[devices]]
name = "balance"
adapter = "sartorius.balance"

[devices.params]
port = "sim://?seed=1&mass_g=50&loss_g_per_s=0.5"
protocol = "{protocol}"
rate_hz = 10

[[channels]]
name = "mass"
kind = "mass"
unit = "g"
source = {{ device = "balance", field = "mass" }}

[[channels]]
name = "mass_stable"
kind = "flag"
unit = "1"
source = {{ device = "balance", field = "stable" }}
"""

EXPERIMENT = """
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config:
    duration_s: 1.0
operator:
  id: test
sample:
  id: BAL-001
"""


@pytest.mark.parametrize("protocol", ["sbi", "xbpi"])
def test_headless_run_records_the_balance(tmp_path, protocol):
    (tmp_path / "rig.toml").write_text(textwrap.dedent(RIG.format(protocol=protocol)))
    (tmp_path / "exp.yaml").write_text(textwrap.dedent(EXPERIMENT))
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "capa", "run", "exp.yaml", "--runs-root", str(runs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [bundle] = [p for p in runs.iterdir() if p.is_dir()]
    scalars = pq.read_table(bundle / "scalars.parquet").to_pylist()
    mass = [r for r in scalars if r["channel"] == "mass"]
    assert len(mass) >= 3
    assert all(r["status"] == "ok" for r in mass)
    assert mass[-1]["value"] < mass[0]["value"] <= 50.0  # the specimen loses mass
    table = pq.read_table(bundle / "device_records" / "sartorius.parquet")
    assert table.schema.field("raw").type == pa.binary()  # bytes, not hex text
    records = table.to_pylist()
    assert len(records) == len(mass)
    # every records table has the run clock's join key: here the sample's time
    assert [r["t_mono_ns"] for r in records] == [r["t_mono_ns"] for r in mass]
    assert all(r["t_request_ns"] <= r["t_receive_ns"] for r in records)
    assert all(r["comm_error"] == "" for r in records)
    if protocol == "xbpi":
        # Real xBPI on the wire: every reply is a 0x41-marked measurement frame (0x48).
        assert all(r["raw"].startswith(bytes.fromhex("0b4148")) for r in records)


FAULT_RIG = """
name = "two-balances"

[[devices]]
name = "balance"
adapter = "sartorius.balance"

[devices.params]
port = "{port}"
protocol = "{protocol}"
rate_hz = 5
timeout_s = 0.3

[[devices]]
name = "reference"
adapter = "sartorius.balance"

[devices.params]
port = "sim://?mass_g=20"
protocol = "sbi"
rate_hz = 5

[[channels]]
name = "mass"
kind = "mass"
unit = "g"
source = {{ device = "balance", field = "mass" }}

[[channels]]
name = "reference"
kind = "mass"
unit = "g"
source = {{ device = "reference", field = "mass" }}
"""


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["sbi", "xbpi"])
def test_run_survives_a_balance_port_killed_while_idle(tmp_path, protocol):
    import json
    import sqlite3
    import time

    from capa_sartorius.sim import BalanceConfig, BalanceModel, PtySimulator

    sim = PtySimulator(
        BalanceModel(BalanceConfig(mass_g=50.0)),
        protocol=protocol,
        link=tmp_path / "balance",
        downtime_s=1.0,
    )
    sim.start()
    rig = FAULT_RIG.format(port=sim.path, protocol=protocol)
    (tmp_path / "rig.toml").write_text(textwrap.dedent(rig))
    (tmp_path / "exp.yaml").write_text(
        textwrap.dedent(EXPERIMENT).replace("duration_s: 1.0", "duration_s: 6.0")
    )
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "run", "exp.yaml", "--runs-root", str(runs)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Let the run record for a while, then pull the port between two polls.
        deadline = time.monotonic() + 60
        while sim.connections < 1 or not list(runs.glob("*/")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2.0)
        sim.drop_port()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        sim.stop()
    assert proc.returncode == 0, out + err
    [bundle] = [p for p in runs.iterdir() if p.is_dir()]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["bundle_status"] == "sealed"
    scalars = pq.read_table(bundle / "scalars.parquet").to_pylist()
    mass = [r for r in scalars if r["channel"] == "mass"]
    reference = [r for r in scalars if r["channel"] == "reference"]
    statuses = [r["status"] for r in mass]
    # The balance lost its port, recorded comm_error ticks, then recorded again.
    assert "comm_error" in statuses
    assert statuses[-1] == "ok"
    assert statuses.index("comm_error") > 0
    # The other device kept recording, with no gap, while the balance was away.
    assert all(r["status"] == "ok" for r in reference)
    times = [r["t_mono_ns"] for r in reference]
    assert max(b - a for a, b in itertools.pairwise(times)) < 1e9
    with sqlite3.connect(bundle / "events.sqlite") as db:
        kinds = {row[0] for row in db.execute("SELECT kind FROM events")}
    assert kinds & {"sartorius.port_lost_idle", "sartorius.port_lost_mid_exchange"}
    assert "sartorius.reconnected" in kinds
