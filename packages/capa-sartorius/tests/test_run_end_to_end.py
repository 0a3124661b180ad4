"""A headless ``capa run`` records a sim:// balance: samples and native device records."""

import subprocess
import sys
import textwrap

import pytest

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
    records = pq.read_table(bundle / "device_records" / "sartorius.parquet").to_pylist()
    assert len(records) == len(mass)
    assert all(r["t_request_ns"] <= r["t_receive_ns"] for r in records)
    assert all(r["comm_error"] == "" for r in records)
