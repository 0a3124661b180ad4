"""No capa run path imports pandas (issue 15: +2.8 s to the first sample when it did).

pyarrow imports pandas whenever it is installed and ``pyarrow.array()`` (or
``pyarrow.parquet.read_table``) is called; pandas is in the test dependency group so this
guard means something. A real ``capa run`` in a fresh interpreter — CLI, plugin host,
validation, pool, pipeline (wide and long layouts, a derived channel, device records),
writer, finalize — must leave ``pandas`` out of ``sys.modules`` from start-up to exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RIG = """
name = "no-pandas"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
mode = "polled"
rate_hz = 20
[devices.params.signals]
pv = { kind = "sine", unit = "degC", offset = 25.0, amplitude = 1.0, period_s = 2.0 }

[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
resource = "daq"
mode = "block"
sample_rate_hz = 2000
block_size = 200
[devices.params.signals]
a = { kind = "sine", unit = "V", offset = 0.0, amplitude = 1.0, period_s = 0.5 }
b = { kind = "noise", unit = "V", mean = 1.0, sigma = 0.01 }

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "pv" }

[[channels]]
name = "va"
kind = "voltage"
unit = "V"
source = { device = "daq", field = "a" }
calibration = { kind = "linear", slope = 2.0 }
keep_raw = true

[[channels]]
name = "vb"
kind = "voltage"
unit = "V"
source = { device = "daq", field = "b" }

[[derived]]
name = "vsum"
expression = "va + vb"
unit = "V"
kind = "voltage"
"""

EXPERIMENT = """
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config: {duration_s: 1.5}
operator: {id: t}
sample: {id: S-1}
"""

# Runs `capa run` in this interpreter and reports when (if ever) pandas appeared: a
# watcher thread samples sys.modules every few ms, and the first sample's time is taken
# from the conductor's arming (start-up ends there).
DRIVER = textwrap.dedent(
    """
    import json, sys, threading, time

    seen = {}

    def watch():
        while True:
            if "pandas" in sys.modules and "pandas" not in seen:
                seen["pandas"] = time.monotonic()
            time.sleep(0.002)

    threading.Thread(target=watch, daemon=True).start()
    import capa.runtime.pipeline as pipeline

    real = pipeline.ChannelPipeline.process
    def process(self, device, emission):
        seen.setdefault("first_emission", time.monotonic())
        seen.setdefault("pandas_at_first_emission", "pandas" in sys.modules)
        return real(self, device, emission)
    pipeline.ChannelPipeline.process = process

    from capa.cli.main import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        seen["code"] = exc.code
    seen["pandas_at_exit"] = "pandas" in sys.modules
    print("RESULT " + json.dumps(seen))
    """
)


def test_pandas_is_installed_so_the_guard_means_something():
    proc = subprocess.run(
        [sys.executable, "-c", "import pandas"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, "pandas must be installed for the no-pandas guard: " + (
        proc.stderr
    )


def block_only(rig: str) -> str:
    """The rig without its polled device: ``scalars.parquet`` is sealed with no rows."""
    head, rest = rig.split("[[devices]]", 1)
    _polled, rest = rest.split("[[devices]]", 1)
    rest = rest.replace(
        """[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "pv" }

""",
        "",
    )
    assert "oven" not in rest
    return head + "[[devices]]" + rest


@pytest.mark.parametrize("rig", [RIG, block_only(RIG)], ids=["both-modes", "block-only"])
def test_a_real_run_never_imports_pandas(tmp_path: Path, rig: str):
    (tmp_path / "rig.toml").write_text(rig)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            "run",
            str(tmp_path / "exp.yaml"),
            "--runs-root",
            str(tmp_path / "runs"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    seen = json.loads(lines[-1][len("RESULT ") :])
    assert seen["code"] == 0, proc.stdout + proc.stderr
    assert "first_emission" in seen, "the run recorded nothing"
    assert seen["pandas_at_first_emission"] is False  # start-up
    assert "pandas" not in seen, "pandas was imported during the run"
    assert seen["pandas_at_exit"] is False  # recording, stop, finalize, seal
    # And the run recorded what it should, wide and long.
    (bundle,) = [p for p in (tmp_path / "runs").iterdir() if (p / "manifest.json").exists()]
    assert (bundle / "samples" / "daq" / "part-00000.parquet").exists()
    assert (bundle / "scalars.parquet").exists()
