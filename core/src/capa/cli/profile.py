"""``capa profile``: domain profiles — which exist, and does an experiment satisfy one?"""

from __future__ import annotations

import json
from pathlib import Path

import click

from capa.cli.common import load_plugin_host
from capa.cli.config_output import EXIT_INVALID, echo_problem_lines

__all__ = ["profile"]


@click.group()
def profile() -> None:
    """Domain profiles: the metadata and channels a kind of run must carry."""


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array for scripts.")
def list_profiles(as_json: bool) -> None:
    """Every installed profile with the distribution that provides it. Exit 0."""
    host = load_plugin_host()
    rows = [
        {
            "id": rec.id,
            "name": getattr(rec.cls, "name", "") or rec.id,
            "dist": rec.dist,
            "version": rec.version,
        }
        for rec in host.profiles.records()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no profiles installed")
        return
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        click.echo(f"{r['id'].ljust(width)}  {r['name']}  ({r['dist']} {r['version']})")


@profile.command("validate")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--profile",
    "profile_id",
    default=None,
    help="Check against this profile instead of the one the experiment names.",
)
@click.pass_context
def validate_profile(ctx: click.Context, config: Path, profile_id: str | None) -> None:
    """Validate an experiment and check it against its domain profile.

    The profile is the experiment's `profile.id`, or `--profile ID`. Prints every problem
    (profile findings included, with file and line) and `OK: CONFIG (profile ID)`. Exit 0
    when clean, 2 on an unknown profile or any error (seed 001).
    """
    from capa.config.validate import validate_experiment
    from capa.errors import UnknownComponentError

    host = load_plugin_host()
    if profile_id is not None and profile_id not in host.profiles:
        raise UnknownComponentError("profile", profile_id, host.profiles.ids())
    report = validate_experiment(config, host, profile=profile_id)
    echo_problem_lines(report, errors_to_stderr=True)
    if not report.ok:
        ctx.exit(EXIT_INVALID)
    if report.profile is None:
        click.echo(
            f"{config}: names no profile; add `profile: {{id: ...}}` or pass --profile "
            f"(installed: {', '.join(host.profiles.ids()) or 'none'})",
            err=True,
        )
        ctx.exit(EXIT_INVALID)
    checked = report.profile
    warnings = sum(1 for f in checked.findings if f.severity.value == "warning")
    note = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
    click.echo(f"OK: {config} (profile {checked.profile.id}{note})")
