"""A whole headless run (`capa run`) with two controllers on one ``sim://`` bus."""

import subprocess
import sys

import pyarrow.parquet as pq

RIG = """
name = "watlow-sim-rig"

[[devices]]
name = "oven_a"
adapter = "watlow.ezzone_pm"
[devices.params]
port = "sim://?addresses=1,2&tau=2&setpoint=25"
address = 1
poll_rate_hz = 20
instances = [1, 2]

[[devices]]
name = "oven_b"
adapter = "watlow.ezzone_pm"
[devices.params]
port = "sim://?addresses=1,2&tau=2&setpoint=25"
address = 2
poll_rate_hz = 20
unit = "K"

[[channels]]
name = "a_t"
kind = "temperature"
unit = "degC"
source = { device = "oven_a", field = "process_value" }

[[channels]]
name = "a_t2"
kind = "temperature"
unit = "degC"
source = { device = "oven_a", field = "process_value_2" }

[[channels]]
name = "b_t"
kind = "temperature"
unit = "K"
source = { device = "oven_b", field = "process_value" }
"""

EXPERIMENT = """
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config:
    duration_s: 1
operator:
  id: test
sample:
  id: W-1
"""


def test_capa_run_records_both_controllers_from_one_simulated_bus(tmp_path):
    (tmp_path / "rig.toml").write_text(RIG)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "capa", "run", str(tmp_path / "exp.yaml"), "--runs-root", str(runs)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [bundle] = [p for p in runs.iterdir() if p.is_dir()]
    scalars = pq.read_table(bundle / "scalars.parquet").to_pylist()
    by_channel = {}
    for row in scalars:
        by_channel.setdefault(row["channel"], []).append(row)
    assert set(by_channel) == {"a_t", "a_t2", "b_t"}
    assert all(r["status"] == "ok" for r in scalars)
    assert by_channel["a_t"][0]["value"] == 25.0
    assert abs(by_channel["b_t"][0]["value"] - 298.15) < 1e-6
    records = pq.read_table(bundle / "device_records" / "watlow.parquet").to_pylist()
    assert {(r["device"], r["address"], r["instance"]) for r in records} == {
        ("oven_a", 1, 1), ("oven_a", 1, 2), ("oven_b", 2, 1),
    }  # fmt: skip
    assert all(r["t_request_ns"] <= r["t_receive_ns"] for r in records)
