"""Test components registered on an isolated host: a controller, a thermometer, steps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import capa

HANDSHAKES: list[str] = []


class Controller(capa.Adapter):
    """A test temperature controller on a serial port: process value and a setpoint."""

    id = "test.controller"
    capabilities = frozenset({"has_setpoint"})

    class Params(capa.ConfigModel):
        port: str
        baudrate: int = 9600
        address: int = 1
        fail_handshake: bool = False

    @classmethod
    def resource_id(cls, params):
        return f"serial:{params.port}"

    @classmethod
    def fields(cls, params):
        return [
            capa.FieldSpec("process_value", "degC", "process_value"),
            capa.FieldSpec("setpoint", "degC", "setpoint", writable=True),
        ]

    @classmethod
    async def handshake(cls, params):
        HANDSHAKES.append(params.port)
        if params.fail_handshake:
            return capa.HandshakeResult(ok=False, detail=f"no answer on {params.port}")
        return capa.HandshakeResult(ok=True, detail=f"controller at {params.port}")

    @classmethod
    async def discover(cls):
        return [capa.DiscoveredDevice(cls.id, "serial:/dev/ttyTEST0", "test controller")]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=True)


class Thermo(capa.Adapter):
    """A test thermometer reporting in kelvin."""

    id = "test.thermo"

    class Params(capa.ConfigModel):
        channel: int = 0
        scale: Literal["K", "degF"] = "K"

    @classmethod
    def resource_id(cls, params):
        return f"sim:thermo{params.channel}"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("temperature", params.scale), capa.FieldSpec("volts", "V")]

    @classmethod
    def claims(cls, params):
        return [f"thermo-ch{params.channel}"]

    @classmethod
    async def discover(cls):
        raise OSError("bus not reachable")

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=False, detail="read-only")


class Camera(capa.Adapter):
    """A test camera (records video, so `devices discover` leaves it out)."""

    id = "test.camera"
    capabilities = frozenset({"records_video"})

    class Params(capa.ConfigModel):
        index: int = 0

    @classmethod
    def resource_id(cls, params):
        return f"camera:{params.index}"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("frame_idx", "")]

    @classmethod
    async def discover(cls):
        return [capa.DiscoveredDevice(cls.id, "camera:0", "test camera")]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=False)


class FreeRun(capa.Procedure):
    """Record until stopped."""

    id = "test.free_run"

    class Config(capa.ConfigModel):
        duration_s: float | None = None

    async def run(self, ctx):
        pass


class Recipe(capa.Procedure):
    """Run a method."""

    id = "test.recipe"
    uses_method = True
    Config = capa.EmptyConfig

    async def run(self, ctx):
        pass


class Hold(capa.Step):
    """Hold a target at a value."""

    kind = "hold"
    writes_target = True

    class Config(capa.StepConfig):
        target: str
        value: float
        duration_s: float | None = None

    async def execute(self, ctx):
        pass


class Wait(capa.Step):
    """Wait for a while."""

    kind = "wait"

    class Config(capa.StepConfig):
        duration_s: float

    async def execute(self, ctx):
        pass


class Watch(capa.Step):
    """Read a channel until it passes a value (reads, never writes)."""

    kind = "watch"

    class Config(capa.StepConfig):
        target: str
        above: float

    async def execute(self, ctx):
        pass


class Mirror(capa.Sink):
    """Copy records somewhere."""

    id = "test.mirror"

    class Config(capa.ConfigModel):
        url: str

    async def open(self, ctx):
        pass

    def consume(self, record):
        pass

    async def close(self, run_status):
        pass


PLUGIN = SimpleNamespace(
    capa_register_adapters=capa.hookimpl(lambda: [Controller, Thermo, Camera]),
    capa_register_procedures=capa.hookimpl(lambda: [FreeRun, Recipe]),
    capa_register_steps=capa.hookimpl(lambda: [Hold, Wait, Watch]),
    capa_register_sinks=capa.hookimpl(lambda: [Mirror]),
)


def make_host() -> capa.PluginHost:
    """An isolated host: core's built-in plugin plus the components above."""
    host = capa.PluginHost(builtin=True)
    host.load(entry_points=False)
    record = host.register(PLUGIN, name="testplug")
    assert record.status.value == "loaded", record.reason
    assert not host.rejections, host.rejections
    return host


RIG = """\
name = "bench"

[[devices]]
name = "heater"
adapter = "test.controller"
params = { port = "/dev/ttyT0", baudrate = 19200 }

[[devices]]
name = "probe"
adapter = "test.thermo"

[devices.params]
channel = 2

[[channels]]
name = "heater_pv"
kind = "temperature"
unit = "degC"
source = { device = "heater", field = "process_value" }

[[channels]]
name = "heater_sp"
kind = "temperature"
unit = "degC"
source = { device = "heater", field = "setpoint" }
calibration = { kind = "linear", slope = 1.0, intercept = -0.5 }

[[channels]]
name = "sample_t"
kind = "temperature"
unit = "K"
source = { device = "probe", field = "temperature" }
"""

METHOD = """\
name = "soak"
description = "heat and hold"

[[steps]]
kind = "hold"
target = "heater_sp"
value = 120.0
duration_s = 5

[[steps]]
kind = "wait"
duration_s = 1

[[steps]]
kind = "watch"
target = "sample_t"
above = 300
"""

EXPERIMENT = """\
hardware: rig.toml
method: soak.method.toml
procedure:
  id: test.recipe
operator:
  id: ab
sample:
  id: S-001
  mass_g: 1.5
tags: [smoke]
"""


def write_set(root: Path) -> Path:
    """Write the valid experiment, rig and method into ``root``; return the experiment."""
    (root / "rig.toml").write_text(RIG, encoding="utf-8")
    (root / "soak.method.toml").write_text(METHOD, encoding="utf-8")
    path = root / "experiment.yaml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    return path
