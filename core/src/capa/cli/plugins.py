"""``capa plugins``: what is installed, what loaded, and why anything did not."""

from __future__ import annotations

from typing import Any

import click

from capa.cli.common import load_plugin_host
from capa.cli.output import echo_json, echo_table

__all__ = ["plugins"]


@click.group()
def plugins() -> None:
    """Inspect the plugins capa discovers through the `capa` entry-point group."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_plugins(as_json: bool) -> None:
    """List plugins, their components, and every rejection with its reason.

    Always exits 0: a broken plugin is reported here, not signalled by the exit code.
    """
    host = load_plugin_host()
    # Plugin CLI additions are part of what a plugin provides; collect them too.
    from capa.cli.main import CapaGroup, cli

    if isinstance(cli, CapaGroup):
        cli.register_plugin_commands()
    rows = _describe(host)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["plugin", "distribution", "version", "status", "components"],
        [
            (
                r["name"],
                r["dist"],
                r["version"],
                r["status"],
                ", ".join(f"{c['kind']}:{c['id']}" for c in r["components"]) or "-",
            )
            for r in rows
        ],
    )
    problems = [(r, why) for r in rows for why in _reasons(r)]
    if problems:
        click.echo("")
        click.echo("problems:")
        for r, why in problems:
            click.echo(f"  {r['name']} ({r['dist']} {r['version']}): {why}")


def _describe(host: Any) -> list[dict[str, Any]]:
    out = []
    for key in sorted(host.plugins):
        rec = host.plugins[key]
        components = [
            {"kind": tag.split(":", 1)[0], "id": tag.split(":", 1)[1]} for tag in rec.components
        ]
        rejected = [
            {"kind": r.kind.value, "id": r.id, "class": r.qualname, "reason": r.reason}
            for r in host.rejections
            if r.plugin == rec.name and r.dist == rec.dist
        ]
        out.append(
            {
                "name": rec.name,
                "dist": rec.dist,
                "version": rec.version,
                "entry_point": rec.entry_point,
                "status": rec.status.value,
                "reason": rec.reason or None,
                "components": components,
                "rejected": rejected,
                "commands": list(rec.commands),
            }
        )
    return out


def _reasons(row: dict[str, Any]) -> list[str]:
    reasons = [row["reason"]] if row["reason"] else []
    reasons += [
        f"rejected {r['kind']} {r['id'] or r['class']!r}: {r['reason']}" for r in row["rejected"]
    ]
    return reasons
