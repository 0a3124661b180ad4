"""``capa hardware``: validate, check, create and discover rigs."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import click

from capa.cli.common import load_plugin_host
from capa.cli.config_output import EXIT_INVALID, echo_problem_lines, echo_summary

__all__ = ["hardware"]

TEMPLATE = """\
# capa hardware file. `capa config schema hardware` lists every key with its default;
# `capa hardware discover` lists devices the installed adapters can reach.
name = {name}

# [[devices]]
# name = "oven"
# adapter = "capa.sim.signals"
#
# [devices.params]
# writable = ["setpoint"]
# signals.setpoint = {{ kind = "constant", unit = "degC", value = 25.0 }}
#
# [[channels]]
# name = "oven_sp"
# kind = "temperature"
# unit = "degC"
# source = {{ device = "oven", field = "setpoint" }}
"""


@click.group()
def hardware() -> None:
    """Work with hardware files (devices and channels of a rig)."""


def _run_validation(ctx: click.Context, path: Path, live: bool) -> None:
    from capa.config.validate import validate_hardware

    report = validate_hardware(path, load_plugin_host(), live=live)
    echo_problem_lines(report)
    echo_summary(report)
    if not report.ok:
        ctx.exit(EXIT_INVALID)


@hardware.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def validate_hw(ctx: click.Context, path: Path) -> None:
    """Validate a hardware file without touching hardware. Exit 0 clean, 2 on any error."""
    _run_validation(ctx, path, live=False)


@hardware.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def check_hw(ctx: click.Context, path: Path) -> None:
    """Validate, then handshake each device (read-only). Exit 0 clean, 2 on any error."""
    _run_validation(ctx, path, live=True)


@hardware.command("new")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Rig name (default: the file name's stem).")
def new_hw(path: Path, name: str | None) -> None:
    """Write a minimal valid hardware file; never overwrites (exit 2 if PATH exists)."""
    from capa.errors import ConfigError

    if path.suffix.lower() != ".toml":
        raise ConfigError(f"{path}: hardware files are TOML; use a .toml file name")
    rig = name if name is not None else path.stem
    if not rig.strip():
        raise ConfigError(f"{path}: --name must not be empty")
    text = TEMPLATE.format(name=json.dumps(rig, ensure_ascii=False))  # JSON strings are TOML
    _write_new(path, text.encode("utf-8"))
    click.echo(f"wrote {path}")


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` completely or not at all, and never replace an existing file."""
    from capa.errors import ConfigError

    if path.exists() or path.is_symlink():
        raise ConfigError(f"{path}: already exists; refusing to overwrite")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".capa-tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails if the target appeared meanwhile: no race can make us overwrite.
        os.link(tmp, path)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; refusing to overwrite") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@hardware.command("discover")
@click.option("--adapter", "adapter", default=None, help="Only this adapter id.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def discover_hw(adapter: str | None, as_json: bool) -> None:
    """Ask every installed adapter (cameras included) which devices it can reach.

    Exit 0 even when nothing is found; 2 for an unknown --adapter.
    """
    from capa.cli.discovery import discover, echo_findings

    echo_findings(discover(load_plugin_host(), adapter, include_video=True), as_json)
