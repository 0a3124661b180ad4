"""Validation layers of a hardware table: schema, references, resources, live handshakes.

Adapter classes come from the :class:`~capa.plugins.host.PluginHost` passed in; plugin
code (``Params``, ``fields``, ``resource_id``, ``handshake``) is called defensively, so a
broken adapter becomes a ``plugin.error`` problem rather than a traceback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from capa.components.adapter import Adapter, FieldSpec
from capa.components.model import ConfigModel
from capa.config.check_derived import ResolvedDerived, check_derived
from capa.config.check_safety import check_alarm_names, check_safety
from capa.config.hardware import ChannelConfig, DeviceConfig, HardwareConfig
from capa.config.problems import Collector, Section, did_you_mean
from capa.config.providers import provider_hint
from capa.config.units import canonical_unit, is_convertible

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = [
    "ResolvedDevice",
    "ResolvedHardware",
    "check_hardware",
    "check_live",
    "check_live_async",
    "check_resources",
]

HANDSHAKE_TIMEOUT_S = 10.0


@dataclass
class ResolvedDevice:
    """A device whose adapter and params validated."""

    index: int
    config: DeviceConfig
    cls: type[Adapter]
    params: ConfigModel
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    writable: frozenset[str] = frozenset()
    resource_id: str | None = None


@dataclass
class ResolvedHardware:
    """A hardware table after the schema and reference layers."""

    config: HardwareConfig
    section: Section
    devices: dict[str, ResolvedDevice] = field(default_factory=dict)
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    derived: dict[str, ResolvedDerived] = field(default_factory=dict)
    """Derived channels in evaluation order (inputs before the channels that use them)."""

    def has_channel(self, name: str) -> bool:
        """Whether ``name`` is a measured or a derived channel."""
        return name in self.channels or name in self.derived

    def channel_writable(self, name: str) -> bool:
        """Whether a step may write channel ``name`` (its source field is writable)."""
        if name in self.derived:
            return False  # computed, never written
        channel = self.channels[name]
        device = self.devices.get(channel.source.device)
        return device is not None and channel.source.field in device.writable


def _plugin_failure(col: Collector, section: Section, loc: tuple[Any, ...], what: str) -> None:
    col.error(section, "plugin.error", loc, what)


def check_hardware(
    data: Any, section: Section, host: PluginHost, col: Collector
) -> ResolvedHardware | None:
    """Schema and reference layers; ``None`` when the schema layer found errors."""
    start = len(col.problems)
    config = col.validate(HardwareConfig, data, section)
    raw_devices = data.get("devices") if isinstance(data, Mapping) else None
    if config is None:
        # Still report every device's params problems: the whole schema layer at once.
        if isinstance(raw_devices, list):
            for i, raw in enumerate(raw_devices):
                try:
                    dev = DeviceConfig.model_validate(raw)
                except ValidationError:
                    continue  # its own problems are already recorded
                _resolve_device(i, dev, section, host, col)
        return None
    resolved = ResolvedHardware(config, section)
    for i, dev in enumerate(config.devices):
        device = _resolve_device(i, dev, section, host, col)
        if device is not None and dev.name not in resolved.devices:
            resolved.devices[dev.name] = device
    _check_names(config, section, col)
    if any(p.is_error for p in col.problems[start:]):
        return None
    _check_channels(resolved, col)
    for channel in config.channels:
        resolved.channels.setdefault(channel.name, channel)
    resolved.derived = check_derived(config, section, col)
    check_safety(resolved, col, alarms=config.alarms, interlocks=config.interlocks, section=section)
    check_alarm_names(config.alarms, [], col, rig_section=section)
    return resolved


def _resolve_device(
    i: int, dev: DeviceConfig, section: Section, host: PluginHost, col: Collector
) -> ResolvedDevice | None:
    loc = ("devices", i)
    cls = host.adapters.get(dev.adapter)
    if cls is None:
        available = host.adapters.ids()
        col.error(
            section,
            "plugin.adapter_unknown",
            (*loc, "adapter"),
            f"unknown adapter {dev.adapter!r}{did_you_mean(dev.adapter, available)}"
            f"{provider_hint('adapter', dev.adapter)}; "
            f"available: {', '.join(available) or 'none installed'}",
        )
        return None
    params = col.validate(
        cls.Params, dev.params, section.at(*loc, "params"), plugin=f"adapter {dev.adapter!r}"
    )
    if params is None:
        return None
    device = ResolvedDevice(i, dev, cls, params)
    try:
        device.fields = {f.name: f for f in cls.fields(params)}
        device.writable = frozenset(cls.writable_fields(params))
        device.resource_id = dev.resource_id or cls.resource_id(params)
    except Exception as exc:  # plugin code: report, never crash validation
        _plugin_failure(col, section, loc, f"adapter {dev.adapter!r} failed: {exc}")
        return None
    return device


def _check_names(config: HardwareConfig, section: Section, col: Collector) -> None:
    groups: tuple[tuple[str, list[str]], ...] = (
        ("device", [d.name for d in config.devices]),
        ("channel", [c.name for c in config.channels]),
    )
    for what, names in groups:
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                col.error(
                    section,
                    f"{what}.duplicate_name",
                    (f"{what}s", i, "name"),
                    f"{what} name {name!r} is already used by {what}s[{seen[name]}]",
                )
            else:
                seen[name] = i


def _check_channels(hw: ResolvedHardware, col: Collector) -> None:
    section = hw.section
    names = [d.name for d in hw.config.devices]
    for i, channel in enumerate(hw.config.channels):
        loc = ("channels", i, "source")
        device = hw.devices.get(channel.source.device)
        if channel.source.device not in names:
            col.error(
                section,
                "channel.device_unknown",
                (*loc, "device"),
                f"channel {channel.name!r} reads device {channel.source.device!r}, which is "
                f"not declared{did_you_mean(channel.source.device, names)}",
            )
            continue
        if device is None:
            continue
        spec = device.fields.get(channel.source.field)
        if spec is None:
            offered = sorted(device.fields)
            col.error(
                section,
                "channel.field_unknown",
                (*loc, "field"),
                f"device {device.config.name!r} ({device.config.adapter}) has no field "
                f"{channel.source.field!r}{did_you_mean(channel.source.field, offered)}; "
                f"fields: {', '.join(offered) or 'none'}",
            )
            continue
        if spec.unit and channel.unit and canonical_unit(spec.unit) != canonical_unit(channel.unit):
            if is_convertible(spec.unit, channel.unit):
                col.info(
                    section,
                    "channel.unit_converted",
                    ("channels", i, "unit"),
                    f"field reports {spec.unit}; values are converted to {channel.unit}",
                )
            else:
                col.warning(
                    section,
                    "channel.unit_mismatch",
                    ("channels", i, "unit"),
                    f"field {channel.source.field!r} reports {spec.unit!r} but the channel "
                    f"says {channel.unit!r} (use derived_unit for a calibrated unit)",
                )


def check_resources(hw: ResolvedHardware, col: Collector) -> None:
    """Resource layer: devices sharing a resource must agree on how it is opened."""
    groups: dict[str, list[ResolvedDevice]] = defaultdict(list)
    claims: dict[str, ResolvedDevice] = {}
    for device in hw.devices.values():
        if device.resource_id:
            groups[device.resource_id].append(device)
        for claim in _claims(device, hw, col):
            other = claims.get(claim)
            if other is not None and other is not device:
                col.error(
                    hw.section,
                    "resource.claim_conflict",
                    ("devices", device.index),
                    f"{claim!r} is used by devices {other.config.name!r} and "
                    f"{device.config.name!r}",
                )
            claims.setdefault(claim, device)
    for rid, devices in groups.items():
        if len(devices) < 2:
            continue
        first = devices[0]
        for device in devices[1:]:
            if "records_video" in device.cls.capabilities:
                col.error(
                    hw.section,
                    "resource.conflict",
                    ("devices", device.index),
                    f"camera resource {rid!r} is opened by both {first.config.name!r} and "
                    f"{device.config.name!r}",
                )
                continue
            a, b = _settings(first, hw, col), _settings(device, hw, col)
            for key in sorted(set(a) & set(b)):
                if a[key] != b[key]:
                    col.error(
                        hw.section,
                        "resource.conflict",
                        ("devices", device.index, "params", key),
                        f"{rid}: {device.config.name!r} uses {key}={b[key]!r} but "
                        f"{first.config.name!r} uses {key}={a[key]!r} on the same resource",
                    )


def _settings(device: ResolvedDevice, hw: ResolvedHardware, col: Collector) -> dict[str, Any]:
    try:
        return dict(device.cls.resource_settings(device.params))
    except Exception as exc:
        _plugin_failure(col, hw.section, ("devices", device.index), f"resource_settings: {exc}")
        return {}


def _claims(device: ResolvedDevice, hw: ResolvedHardware, col: Collector) -> list[str]:
    try:
        return [str(c) for c in device.cls.claims(device.params)]
    except Exception as exc:
        _plugin_failure(col, hw.section, ("devices", device.index), f"claims: {exc}")
        return []


def check_live(hw: ResolvedHardware, col: Collector) -> None:
    """Live layer: each device's read-only handshake (starts its own event loop)."""
    import anyio

    anyio.run(check_live_async, hw, col)


async def check_live_async(hw: ResolvedHardware, col: Collector) -> None:
    """Live layer for callers already inside an event loop.

    Handshakes run one after another (devices may share a bus), each on its own thread
    so a blocking driver can neither stall the loop nor outlast the timeout.
    """
    from capa.config.isolate import call_in_thread

    for device in hw.devices.values():
        loc = ("devices", device.index)
        name = device.config.name
        try:
            result = await call_in_thread(
                device.cls.handshake, device.params, timeout_s=HANDSHAKE_TIMEOUT_S
            )
        except TimeoutError:
            col.error(
                hw.section,
                "live.handshake_timeout",
                loc,
                f"device {name!r}: no handshake answer within {HANDSHAKE_TIMEOUT_S:g} s",
            )
            continue
        except Exception as exc:
            col.error(hw.section, "live.handshake_failed", loc, f"device {name!r}: {exc}")
            continue
        if result.ok:
            col.info(hw.section, "live.handshake_ok", loc, f"device {name!r}: {result.detail}")
        else:
            col.error(hw.section, "live.handshake_failed", loc, f"device {name!r}: {result.detail}")
