"""The shipped examples validate against the components that provide them.

`signals_rig.toml` uses only core's own simulator, so it is checked on an isolated host;
`rig.toml` (the demo) uses the device packages' drivers on sim:// ports, and the
experiments need capa-procedures: those are checked with the installed plugins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from capa.config.validate import load_experiment, validate_hardware, validate_method

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
NEEDED_STEPS = ("setpoint", "ramp", "hold", "wait")


def test_signals_rig_validates_with_the_builtin_simulator(capa_host):
    report = validate_hardware(DEMO / "signals_rig.toml", capa_host)
    assert report.problems == []
    hw = report.hardware
    assert sorted(hw.devices) == ["daq", "furnace"]
    assert hw.channel_writable("furnace_sp")
    assert hw.channels["mass"].to_value([1.5], "V").tolist() == [50.0]


@pytest.fixture
def installed_host():
    from capa.plugins.host import PluginHost

    host = PluginHost()
    host.load()
    return host


@pytest.mark.parametrize(
    ("name", "procedure"),
    [("experiment.yaml", "capa.builtin.recipe_runner"), ("free_run.yaml", "capa.builtin.free_run")],
)
def test_demo_experiments_validate_when_their_procedures_are_installed(
    installed_host, name, procedure
):
    if procedure not in installed_host.procedures:
        pytest.skip(f"{procedure} is not installed yet (capa-procedures)")
    if name == "experiment.yaml":
        missing = [k for k in NEEDED_STEPS if k not in installed_host.steps]
        if missing:
            pytest.skip(f"step kinds not installed yet: {', '.join(missing)}")
    report = load_experiment(DEMO / name, installed_host)
    assert report.experiment.procedure.id == procedure


def test_demo_rig_uses_the_device_packages_on_simulators(installed_host):
    report = validate_hardware(DEMO / "rig.toml", installed_host)
    assert report.problems == []
    adapters = {name: d.config.adapter for name, d in report.hardware.devices.items()}
    assert adapters == {
        "furnace": "watlow.ezzone_pm",
        "balance": "sartorius.balance",
        "daq": "nidaq.task",
        "cam": "camera.opencv",
    }
    assert report.hardware.channel_writable("furnace_sp")


def test_demo_recipe_validates_when_its_step_kinds_are_installed(installed_host):
    missing = [k for k in NEEDED_STEPS if k not in installed_host.steps]
    if missing:
        pytest.skip(f"step kinds not installed yet: {', '.join(missing)}")
    report = validate_method(
        DEMO / "recipe.method.toml", installed_host, hardware=DEMO / "rig.toml"
    )
    assert report.ok, report.problems
