"""``capa method``: check a method file and list its steps."""

from __future__ import annotations

from pathlib import Path

import click

from capa.cli.common import load_plugin_host
from capa.cli.config_output import EXIT_INVALID, echo_problem_lines

__all__ = ["method"]


@click.group()
def method() -> None:
    """Work with method files (`*.method.toml`, `*.method.yaml`)."""


@method.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--hardware",
    type=click.Path(path_type=Path),
    default=None,
    help="Also check step targets against this hardware file.",
)
@click.pass_context
def validate_method_cmd(ctx: click.Context, path: Path, hardware: Path | None) -> None:
    """Validate a method and list its steps (`[00] hold  target=heater_sp value=120`).

    Exit 0 when clean, 2 for an unsupported suffix or any error.
    """
    from capa.config.validate import validate_method

    report = validate_method(path, load_plugin_host(), hardware=hardware)
    echo_problem_lines(report, errors_to_stderr=True)
    if not report.ok or report.method is None:
        ctx.exit(EXIT_INVALID)
    resolved = report.method
    click.echo(f"OK: {path}  ({resolved.config.name}, {len(resolved.steps)} steps)")
    width = max((len(s.kind) for s in resolved.steps), default=0)
    for step in resolved.steps:
        declared = [k for k in type(step.config).model_fields if k in step.config.model_fields_set]
        shown = [
            f"{k}={getattr(step.config, k)}"
            for k in sorted(declared, key=lambda k: k != "target")  # stable: target first
            if k != "notes"
        ]
        click.echo(f"[{step.index:02d}] {step.kind.ljust(width)}  {' '.join(shown)}".rstrip())
