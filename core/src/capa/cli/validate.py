"""``capa validate CONFIG [--strict]``: is this experiment ready to run?"""

from __future__ import annotations

from pathlib import Path

import click

from capa.cli.common import load_plugin_host
from capa.cli.config_output import EXIT_INVALID, echo_problem_lines

__all__ = ["validate"]


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--strict", is_flag=True, help="Also handshake every device (read-only; needs the hardware)."
)
@click.pass_context
def validate(ctx: click.Context, config: Path, strict: bool) -> None:
    """Validate an experiment file and the hardware and method files it names.

    Prints `OK: CONFIG` with the rig, channel count and procedure, or one line per
    problem. Exit 0 when clean, 2 on any error (seed 001). Nothing is written.
    """
    from capa.config.validate import validate_experiment

    report = validate_experiment(config, load_plugin_host(), live=strict)
    echo_problem_lines(report, errors_to_stderr=True)
    if not report.ok:
        ctx.exit(EXIT_INVALID)
    click.echo(f"OK: {config}")
    if report.hardware is not None:
        hw = report.hardware.config
        click.echo(f"hardware: {hw.name} ({len(hw.devices)} device{'s' * (len(hw.devices) != 1)})")
        derived = len(report.hardware.derived)
        click.echo(f"channels: {len(hw.channels)}" + (f" (+{derived} derived)" if derived else ""))
        if hw.alarms or hw.interlocks:
            click.echo(f"safety: {len(hw.alarms)} alarm(s), {len(hw.interlocks)} interlock(s)")
    if report.experiment is not None:
        click.echo(f"procedure: {report.experiment.procedure.id}")
    if report.method is not None:
        click.echo(f"method: {report.method.config.name} ({len(report.method.steps)} steps)")
