"""``capa prompt``: answer a running run from another terminal.

``show`` / ``ack`` see and acknowledge a method's prompt step; ``tune RUN_ID skip`` sends
an operator command to a running heat-flux tune (see
:mod:`capa_procedures.heat_flux.operator`). Added to the ``capa`` command through
``capa_register_cli``. Exit codes: 0 done; 2 no such run, the run is sealed, or no prompt
(no tune) is waiting.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import click

__all__ = ["prompt"]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _runs_root(value: Path | None) -> Path:
    """``--runs-root`` > ``$CAPA_RUNS_ROOT`` > ``./runs``, as ``capa run`` resolves it."""
    if value is not None:
        return value.expanduser()
    env = os.environ.get("CAPA_RUNS_ROOT", "").strip()
    return Path(env).expanduser() if env else Path.cwd() / "runs"


def _bundle(run_id: str, runs_root: Path | None) -> Path:
    import capa

    if not _RUN_ID.match(run_id) or run_id in {".", ".."}:
        raise capa.BundleError(f"run id {run_id!r} is not a valid bundle directory name")
    bundle = _runs_root(runs_root) / run_id
    if not bundle.is_dir():
        raise capa.BundleError(f"no bundle directory {bundle}")
    if (bundle / "manifest.sha256").exists():
        raise capa.BundleError(f"run {run_id} is sealed; it has no prompt waiting")
    return bundle


def _pending(bundle: Path, run_id: str) -> dict[str, object]:
    import capa
    from capa_procedures.prompt_files import PENDING_FILE, read_json

    pending = read_json(bundle / PENDING_FILE)
    if pending is None:
        raise capa.BundleError(f"run {run_id} has no prompt waiting for an acknowledgement")
    return pending


_RUNS_ROOT_OPTION = click.option(
    "--runs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Runs root (default: $CAPA_RUNS_ROOT, else ./runs).",
)


@click.group()
def prompt() -> None:
    """Answer the prompt step of a running method (capa-procedures)."""


@prompt.command("show")
@click.argument("run_id")
@_RUNS_ROOT_OPTION
def show_cmd(run_id: str, runs_root: Path | None) -> None:
    """Show the prompt RUN_ID is waiting on."""
    pending = _pending(_bundle(run_id, runs_root), run_id)
    click.echo(f"step:     [{int(str(pending.get('step', 0))):02d}]")
    click.echo(f"title:    {pending.get('title', '')}")
    click.echo(f"message:  {pending.get('message', '')}")
    click.echo(f"shown:    {pending.get('shown_utc', '')}")


@prompt.command("ack")
@click.argument("run_id")
@_RUNS_ROOT_OPTION
@click.option("--by", "by", default=None, help="Who acknowledges (default: the login name).")
def ack_cmd(run_id: str, runs_root: Path | None, by: str | None) -> None:
    """Acknowledge the prompt RUN_ID is waiting on; the method then goes on."""
    from capa_procedures.prompt_files import ACK_FILE, write_json_atomic

    bundle = _bundle(run_id, runs_root)
    pending = _pending(bundle, run_id)
    who = by or getpass.getuser()
    write_json_atomic(
        bundle / ACK_FILE,
        {"step": pending.get("step"), "by": who, "acked_utc": datetime.now(UTC).isoformat()},
    )
    click.echo(f"acknowledged prompt {pending.get('title', '')!r} of run {run_id} as {who}")


@prompt.command("tune")
@click.argument("run_id")
@click.argument("command", type=click.Choice(["skip"]))
@_RUNS_ROOT_OPTION
@click.option("--by", "by", default=None, help="Who gives the command (default: login name).")
def tune_cmd(run_id: str, command: str, runs_root: Path | None, by: str | None) -> None:
    """Send COMMAND to the heat-flux tune RUN_ID is running (skip: give up this target)."""
    import capa
    from capa_procedures.heat_flux.operator import (
        TUNE_COMMAND_FILE,
        TUNE_PENDING_FILE,
    )
    from capa_procedures.prompt_files import read_json, write_json_atomic

    bundle = _bundle(run_id, runs_root)
    pending = read_json(bundle / TUNE_PENDING_FILE)
    if pending is None:
        raise capa.BundleError(f"run {run_id} has no heat-flux tune waiting for commands")
    who = by or getpass.getuser()
    write_json_atomic(
        bundle / TUNE_COMMAND_FILE,
        {"command": command, "by": who, "issued_utc": datetime.now(UTC).isoformat()},
    )
    click.echo(
        f"sent {command!r} to the tune of run {run_id} as {who} (target "
        f"{pending.get('target_kw_m2')} kW/m², iteration {pending.get('iteration')})"
    )
