"""Params validation: duplicate physical channels and names are config problems."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from capa_nidaq.adapter import NidaqTask
from capa_nidaq.params import NidaqParams

TC = {"kind": "thermocouple", "physical_channel": "cDAQ1Mod1/ai0", "name": "tc0"}
V = {"kind": "voltage", "physical_channel": "cDAQ1Mod2/ai0", "name": "v0"}


def params(**kw) -> NidaqParams:
    kw.setdefault("device", "cDAQ1")
    kw.setdefault("channels", [TC, V])
    return NidaqParams.model_validate(kw)


def test_fields_resource_and_claims():
    p = params()
    assert [(f.name, f.unit, f.kind) for f in NidaqTask.fields(p)] == [
        ("tc0", "degC", "temperature"),
        ("v0", "V", "voltage"),
    ]
    assert NidaqTask.resource_id(p) == "daqmx:cDAQ1"
    assert NidaqTask.resource_id(params(chassis="cDAQ9")) == "daqmx:cDAQ9"
    assert NidaqTask.resource_id(params(device="sim://")) == "daqmx-sim:cDAQ1Mod1"
    assert NidaqTask.claims(p) == ["daqmx:cdaq1mod1/ai0", "daqmx:cdaq1mod2/ai0"]


def test_polled_or_streamed_per_instance():
    from capa import Acquisition

    assert NidaqTask("d", params()).sampling() is Acquisition.POLLED
    assert NidaqTask("d", params(rate_hz=4)).poll_interval_s() == 0.25
    hw = NidaqTask("d", params(timing={"sample_rate_hz": 1000}))
    assert hw.sampling() is Acquisition.STREAMED


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ([TC, {**V, "physical_channel": "CDAQ1MOD1/AI0"}], "used twice"),
        ([TC, {**V, "name": "tc0"}], "name 'tc0' is used twice"),
        ([{**TC, "physical_channel": "cDAQ1Mod1/ai0:3"}], "no ranges"),
        ([{**V, "min": 1, "max": -1}], "min"),
        ([{**TC, "type": "Q"}], "type"),
        ([], "at least 1"),
    ],
)
def test_bad_channels_are_rejected(channels, message):
    with pytest.raises(ValidationError, match=message):
        params(channels=channels)


def test_sim_url_options_are_validated():
    assert params(device="sim://?seed=3&ambient=30").sim_options.ambient == 30
    with pytest.raises(ValidationError, match="unknown sim:// option 'bogus'"):
        params(device="sim://?bogus=1")
    with pytest.raises(ValidationError, match="overrun_at_s"):
        params(device="sim://?overrun_at_s=soon")


RIG = """
name = "r"
[[devices]]
name = "a"
adapter = "nidaq.task"
[devices.params]
device = "sim://"
channels = [{{ kind = "thermocouple", physical_channel = "cDAQ1Mod1/ai0", name = "t0" }},
            {{ kind = "thermocouple", physical_channel = "{second}", name = "t1" }}]
[[devices]]
name = "b"
adapter = "nidaq.task"
[devices.params]
device = "sim://"
channels = [{{ kind = "voltage", physical_channel = "{third}", name = "v" }}]
"""


def validate(tmp_path, second: str, third: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rig.toml"
    path.write_text(RIG.format(second=second, third=third))
    return subprocess.run(
        [sys.executable, "-m", "capa", "hardware", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_hardware_validate_reports_duplicate_physical_channels(tmp_path):
    ok = validate(tmp_path, "cDAQ1Mod1/ai1", "cDAQ1Mod2/ai0")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    same_device = validate(tmp_path, "cDAQ1Mod1/ai0", "cDAQ1Mod2/ai0")
    assert same_device.returncode == 2
    out = same_device.stdout + same_device.stderr
    assert "'cDAQ1Mod1/ai0' is used twice" in out
    assert "devices[0].params.channels" in out  # located at the field, with its line
    assert "Traceback" not in out

    across = validate(tmp_path, "cDAQ1Mod1/ai1", "cDAQ1Mod1/ai1")
    assert across.returncode == 2
    out = across.stdout + across.stderr
    assert "daqmx-sim:cdaq1mod1/ai1" in out
    assert "'a'" in out
    assert "'b'" in out
