"""Contract checks on component classes, via the host and via capa.testing."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel

import capa
from capa.plugins.registry import PluginStatus
from capa.testing import check_adapter, check_procedure, check_sink, check_step


class Meter(capa.Adapter):
    """A valid polled adapter."""

    id = "test.meter"

    class Params(capa.ConfigModel):
        channel: int = 0

    @classmethod
    def resource_id(cls, params):
        return f"sim:meter{params.channel}"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("volts", "V"), capa.FieldSpec("target", "V", writable=True)]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=True)


async def _async_poll_interval(self):
    return 1.0


def make_plugin(**hooks):
    ns = types.SimpleNamespace()
    for name, classes in hooks.items():
        setattr(ns, name, capa.hookimpl(lambda classes=classes: classes))
    return ns


def test_valid_adapter_passes_conformance_with_params():
    check_adapter(Meter, Meter.Params(channel=2))
    assert Meter.writable_fields(Meter.Params()) == frozenset({"target"})
    assert Meter.record_family() == "test"


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"id": "Bad Id"}, "not a lower-case dotted name"),
        ({"id": 5}, "must be a string"),
        ({"Params": dict}, "must be a pydantic BaseModel subclass"),
        ({"Params": type("P", (BaseModel,), {})}, 'extra="forbid"'),
        ({"acquisition": "sometimes"}, "acquisition must be one of"),
        ({"acquisition": capa.Acquisition.STREAMED}, "streamed adapter must implement stream()"),
        ({"capabilities": ["has_tare"]}, "capabilities must be a frozenset"),
        ({"poll_interval_s": _async_poll_interval}, "poll_interval_s() must be a plain function"),
    ],
)
def test_adapter_violations_are_named(attrs, reason):
    broken = type("Broken", (Meter,), {"__doc__": "Broken variant.", **attrs})
    with pytest.raises(AssertionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_adapter(broken)


def test_sync_lifecycle_method_is_rejected():
    def open_(self):
        return None

    broken = type("SyncOpen", (Meter,), {"__doc__": "x", "open": open_})
    with pytest.raises(AssertionError, match=r"open\(\) must be a coroutine"):
        check_adapter(broken)


def test_abstract_adapter_is_rejected_listing_missing_methods():
    class Half(capa.Adapter):
        """Missing most of the lifecycle."""

        id = "test.half"
        Params = capa.EmptyConfig

    with pytest.raises(AssertionError, match=r"abstract methods not implemented: .*command"):
        check_adapter(Half)


def test_describe_checks_catch_unknown_writable_field():
    class Liar(Meter):
        """Claims a writable field it does not have."""

        @classmethod
        def writable_fields(cls, params):
            return frozenset({"nope"})

    with pytest.raises(AssertionError, match="unknown fields"):
        check_adapter(Liar, Liar.Params())


def test_non_class_and_wrong_base_are_rejected(capa_host):
    plugin = make_plugin(capa_register_procedures=[Meter, "not a class"])
    capa_host.register(plugin, name="confused")
    reasons = sorted(r.reason for r in capa_host.rejections_for("confused"))
    assert any("does not subclass capa.Procedure" in r for r in reasons)
    assert any("is not a class" in r for r in reasons)


def test_step_config_must_extend_stepconfig():
    class Bad(capa.Step):
        """A step whose fields forget notes."""

        kind = "bad"
        Config = capa.EmptyConfig

        async def execute(self, ctx):
            pass

    with pytest.raises(AssertionError, match=r"must subclass capa\.StepConfig"):
        check_step(Bad)


def test_sink_consume_must_not_be_async():
    class Slow(capa.Sink):
        """A sink with an async consume."""

        id = "test.slow"
        Config = capa.EmptyConfig

        async def open(self, ctx):
            pass

        async def consume(self, record):  # type: ignore[override]
            pass

        async def close(self, run_status):
            pass

    with pytest.raises(AssertionError, match=r"consume\(\) must be a plain function"):
        check_sink(Slow)


def test_procedure_field_types_are_checked():
    class P(capa.Procedure):
        """Wrong field types."""

        id = "test.p"
        Config = capa.EmptyConfig
        uses_method = "yes"
        required_channels = ["a"]

        async def run(self, ctx):
            pass

    with pytest.raises(AssertionError) as err:
        check_procedure(P)
    assert "uses_method must be a bool" in str(err.value)
    assert "required_channels must be a tuple" in str(err.value)


def test_direct_registration_on_isolated_host(capa_host):
    rec = capa_host.register(make_plugin(capa_register_adapters=[Meter]), name="meters")
    assert rec.status is PluginStatus.LOADED
    assert capa_host.adapters["test.meter"] is Meter
    assert capa_host.adapters.record("test.meter").dist == "<test>"
    # The isolated host did not autoload installed plugins.
    assert "watlow" not in capa_host.plugins


def test_same_class_twice_from_one_plugin_is_harmless(capa_host):
    capa_host.register(make_plugin(capa_register_adapters=[Meter, Meter]), name="twice")
    assert [i for i in capa_host.adapters.ids() if i.startswith("test.")] == ["test.meter"]
    assert capa_host.rejections == []


def test_third_registration_of_a_conflicted_id_is_rejected_too(capa_host):
    clone_a = type("CloneA", (Meter,), {"__doc__": "a"})
    clone_b = type("CloneB", (Meter,), {"__doc__": "b"})
    capa_host.register(make_plugin(capa_register_adapters=[Meter]), name="p1")
    capa_host.register(make_plugin(capa_register_adapters=[clone_a]), name="p2")
    capa_host.register(make_plugin(capa_register_adapters=[clone_b]), name="p3")
    assert "test.meter" not in capa_host.adapters
    assert {r.plugin for r in capa_host.rejections} == {"p1", "p2", "p3"}
