"""``capa devices``: instruments reachable from this computer."""

from __future__ import annotations

import click

from capa.cli.common import load_plugin_host

__all__ = ["devices"]


@click.group()
def devices() -> None:
    """Find instruments (cameras excluded: `capa hardware discover` includes them)."""


@devices.command("discover")
@click.option("--adapter", "adapter", default=None, help="Only this adapter id.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def discover_devices(adapter: str | None, as_json: bool) -> None:
    """Ask every installed adapter (except cameras) which devices it can reach.

    Exit 0 even when nothing is found (per-adapter notes say why); 2 for an unknown
    --adapter.
    """
    from capa.cli.discovery import discover, echo_findings

    echo_findings(discover(load_plugin_host(), adapter, include_video=False), as_json)
