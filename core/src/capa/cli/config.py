"""``capa config``: validate any configuration file; show every key of every model."""

from __future__ import annotations

from pathlib import Path

import click

from capa.cli.common import load_plugin_host
from capa.cli.config_output import EXIT_INVALID, echo_problem_lines, echo_summary

__all__ = ["config"]

_COMPONENT_KINDS = ("adapter", "procedure", "step", "sink")


@click.group()
def config() -> None:
    """Validate configuration files and document their keys."""


@config.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--live", is_flag=True, help="Also handshake every device (read-only).")
@click.pass_context
def validate_config(ctx: click.Context, path: Path, live: bool) -> None:
    """Validate an experiment, hardware or method file; list every problem.

    One line per problem (`[severity] path :: code: message (file:line)`) and a summary.
    Exit 2 only when an error-severity problem was found; warnings do not change it.
    """
    from capa.config.validate import validate_file

    report = validate_file(path, load_plugin_host(), live=live)
    echo_problem_lines(report)
    echo_summary(report)
    if not report.ok:
        ctx.exit(EXIT_INVALID)


@config.command("schema")
@click.argument("name", default="all")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def schema(name: str, as_json: bool) -> None:
    """Show every key, type, default and description of a configuration model.

    NAME is `experiment`, `hardware`, `method`, `all` (the default), or a plugin
    component as `adapter:ID`, `procedure:ID`, `step:KIND` or `sink:ID` (its
    `params` / `config` model).
    """
    from capa.cli.output import echo_json, echo_table
    from capa.config.schema_doc import describe_model

    sections = _models_for(name)
    if as_json:
        echo_json(
            {
                title: [r.as_dict() for r in describe_model(m, collapse=c)]
                for title, m, c in sections
            }
        )
        return
    for i, (title, model, collapse) in enumerate(sections):
        if i:
            click.echo("")
        summary = (model.__doc__ or "").strip().splitlines()
        click.echo(f"{title}: {summary[0]}" if summary else f"{title}:")
        rows = describe_model(model, collapse=collapse)
        echo_table(
            ["key", "type", "default", "description"],
            [(r.key, r.type, r.default, r.description) for r in rows],
        )


def _models_for(name: str) -> list[tuple[str, type, frozenset[str]]]:
    from capa.components.kinds import ComponentKind
    from capa.config.experiment import ExperimentConfig
    from capa.config.hardware import HardwareConfig
    from capa.config.method import MethodConfig

    files: dict[str, tuple[str, type, frozenset[str]]] = {
        "experiment": ("experiment", ExperimentConfig, frozenset({"hardware", "method"})),
        "hardware": ("hardware", HardwareConfig, frozenset()),
        "method": ("method", MethodConfig, frozenset()),
    }
    if name == "all":
        return list(files.values())
    if name in files:
        return [files[name]]
    kind, _, component = name.partition(":")
    if kind not in _COMPONENT_KINDS or not component:
        raise click.BadParameter(
            f"{name!r}: expected experiment, hardware, method, all, or KIND:ID with KIND one "
            f"of {', '.join(_COMPONENT_KINDS)}",
            param_hint="NAME",
        )
    component_kind = ComponentKind(kind)
    cls = load_plugin_host().registry(component_kind).record(component).cls
    model = getattr(cls, component_kind.config_attribute)
    return [(name, model, frozenset())]
