"""The cone-calorimeter profile end to end: `capa profile validate` and `capa run`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ..run.conftest import CapaProcess, events, manifest, summary

RIG = """
name = "cone"

[[devices]]
name = "furnace"
adapter = "capa.sim.signals"
[devices.params]
resource = "furnace"
rate_hz = 20
writable = ["sp"]
[devices.params.signals]
sp = { kind = "constant", value = 25.0, unit = "degC" }
pv = { kind = "follow", source = "sp", tau_s = 0.5, initial = 20.0, unit = "degC" }
m = { kind = "constant", value = 12.5, unit = "g" }
hf = { kind = "constant", value = 0.01, unit = "V" }

[[channels]]
name = "heater_sp"
kind = "temperature"
unit = "degC"
source = { device = "furnace", field = "sp" }

[[channels]]
name = "heater_t"
kind = "temperature"
unit = "degC"
source = { device = "furnace", field = "pv" }

[[channels]]
name = "specimen"
kind = "mass"
unit = "g"
source = { device = "furnace", field = "m" }

[[channels]]
name = "flux"
kind = "heat_flux"
unit = "V"
derived_unit = "{flux_unit}"
source = { device = "furnace", field = "hf" }
calibration = { kind = "linear", slope = 5000.0, intercept = 0.0 }
"""


def write(tmp: Path, *, flux_unit: str = "kW/m2", sample: str = "") -> Path:
    (tmp / "rig.toml").write_text(RIG.replace("{flux_unit}", flux_unit))
    exp = tmp / "experiment.yaml"
    exp.write_text(
        textwrap.dedent(
            f"""\
            hardware: rig.toml
            procedure:
              id: capa.builtin.free_run
              config: {{duration_s: 1.5}}
            operator: {{id: tester}}
            sample: {{id: S-12, material: PMMA, thickness_mm: 6{sample}}}
            profile: {{id: pyrolysis.cone_calorimeter}}
            runtime: {{shutdown_grace_s: 2}}
            """
        )
    )
    return exp


@pytest.fixture
def capa_proc(tmp_path: Path) -> CapaProcess:
    return CapaProcess(tmp_path)


def test_profile_validate_on_the_demo_experiment(capa_proc: CapaProcess):
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo" / "recipe.yaml"
    proc = capa_proc.run("profile", "validate", str(demo))
    assert proc.returncode == 0, proc.stderr
    assert "profile pyrolysis.cone_calorimeter" in proc.stdout


def test_profile_refuses_a_heat_flux_in_volts(capa_proc: CapaProcess):
    exp = write(capa_proc.tmp, flux_unit="V")
    proc = capa_proc.run("profile", "validate", str(exp))
    assert proc.returncode == 2
    assert "profile.channel_unit" in proc.stderr
    assert "rig.toml" in proc.stderr
    assert "add a calibration" in proc.stderr
    # `capa run` refuses it the same way, before anything is written
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2
    assert "profile.channel_unit" in proc.stderr
    assert not (capa_proc.runs.exists() and any(capa_proc.runs.glob("2*")))


@pytest.mark.slow
def test_run_records_profile_roles_and_warnings(capa_proc: CapaProcess):
    exp = write(capa_proc.tmp)  # no sample.mass_g: one warning
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 0, proc.stderr
    bundle = Path(summary(proc.stdout)["bundle"])
    m = manifest(bundle)
    assert m["profile"]["id"] == "pyrolysis.cone_calorimeter"
    assert m["profile"]["dist"] == "capa-procedures"
    assert m["profile"]["roles"] == {
        "heater": "heater_sp",
        "specimen_mass": "specimen",
        "heat_flux": "flux",
    }
    warnings = [e for e in events(bundle) if e[0] == "profile.preflight.warning"]
    assert len(warnings) == 1
    assert warnings[0][1] == "warning"
    assert "sample.mass_g" in warnings[0][2]
