"""Device discovery shared by ``capa hardware discover`` and ``capa devices discover``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from capa.components.adapter import Adapter, DiscoveredDevice
    from capa.plugins.host import PluginHost

__all__ = ["DISCOVER_TIMEOUT_S", "AdapterFindings", "discover", "echo_findings"]

DISCOVER_TIMEOUT_S = 15.0
"""Longest one adapter's ``discover()`` may take before it is reported as timed out."""


@dataclass
class AdapterFindings:
    """What one adapter's discovery found, or why it found nothing."""

    adapter: str
    devices: list[DiscoveredDevice] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "adapter": self.adapter,
            "devices": [
                {
                    "resource_id": d.resource_id,
                    "description": d.description,
                    "params": dict(d.params),
                }
                for d in self.devices
            ],
            "note": self.note or None,
        }


def discover(
    host: PluginHost, adapter: str | None, *, include_video: bool
) -> list[AdapterFindings]:
    """Run ``discover()`` of one adapter or of all; failures become notes, never errors.

    Raises :class:`~capa.errors.UnknownComponentError` (exit 2) for an unknown ``adapter``.
    """
    from capa.errors import UnknownComponentError

    selectable = {
        cid: cls
        for cid in host.adapters.ids()
        if (cls := host.adapters[cid]) is not None
        and (include_video or "records_video" not in cls.capabilities)
    }
    if adapter is not None:
        if adapter not in selectable:
            raise UnknownComponentError("adapter", adapter, selectable)
        selectable = {adapter: selectable[adapter]}

    import anyio

    async def run_all() -> list[AdapterFindings]:
        return [await _discover_one(cid, cls) for cid, cls in selectable.items()]

    return anyio.run(run_all)


async def _discover_one(cid: str, cls: type[Adapter]) -> AdapterFindings:
    from capa.config.isolate import call_in_thread

    findings = AdapterFindings(cid)
    try:
        found = await call_in_thread(cls.discover, timeout_s=DISCOVER_TIMEOUT_S)
        findings.devices = list(found)
    except TimeoutError:
        findings.note = f"discovery timed out after {DISCOVER_TIMEOUT_S:g} s"
    except Exception as exc:  # plugin code: a note, never a failed command
        findings.note = f"discovery failed: {type(exc).__name__}: {exc}"
    else:
        if not findings.devices:
            findings.note = "no devices found"
    return findings


def echo_findings(findings: list[AdapterFindings], as_json: bool) -> None:
    """Grouped by adapter: devices found, or the adapter's note."""
    if as_json:
        from capa.cli.output import echo_json

        echo_json([f.as_dict() for f in findings])
        return
    if not findings:
        click.echo("no adapters installed")
    for f in findings:
        click.echo(f.adapter)
        for d in f.devices:
            click.echo(f"  {d.resource_id}  {d.description}")
        if f.note:
            click.echo(f"  ({f.note})")
