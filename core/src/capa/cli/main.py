"""Entry point of the ``capa`` command and its single error boundary.

Built-in command groups are imported only when invoked (``capa --help`` imports click and
nothing heavy); plugin commands are added through the ``capa_register_cli`` hook the first
time a name that is not built in is asked for.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from typing import NoReturn

import click

from capa import __version__

__all__ = ["EXIT_USAGE", "cli", "main"]

# command name -> "module:attribute"; each module is one command group.
BUILTIN_COMMANDS: dict[str, str] = {
    "catalog": "capa.cli.catalog:catalog",
    "config": "capa.cli.config:config",
    "devices": "capa.cli.devices:devices",
    "export": "capa.cli.export:export",
    "finalize": "capa.cli.finalize:finalize",
    "hardware": "capa.cli.hardware:hardware",
    "method": "capa.cli.method:method",
    "plugins": "capa.cli.plugins:plugins",
    "profile": "capa.cli.profile:profile",
    "run": "capa.cli.run:run",
    "validate": "capa.cli.validate:validate",
    "version": "capa.cli.version:version",
}

EXIT_INTERNAL_ERROR = 5
"""Exit code for an error capa did not anticipate (seed 001's "unexpected": a bug)."""

EXIT_USAGE = 64
"""Exit code of a usage error: a missing argument, an unknown option or command, an option
value of the wrong form (EX_USAGE from sysexits.h, seeds 000/001). Click's own code is 2,
which capa reserves for "the input was read and is invalid"."""


def debug_enabled() -> bool:
    """Whether ``CAPA_DEBUG`` asks for full tracebacks."""
    return os.environ.get("CAPA_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class CapaGroup(click.Group):
    """Root group resolving built-in commands lazily and plugin commands on demand."""

    _plugins_registered = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*BUILTIN_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = BUILTIN_COMMANDS.get(cmd_name)
        if target is not None:
            module_name, attr = target.split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        if cmd_name not in self.commands:
            self.register_plugin_commands()
        return self.commands.get(cmd_name)

    def register_plugin_commands(self) -> None:
        """Load the plugins (once) and let them add their command groups."""
        if self._plugins_registered:
            return
        from capa.cli.common import load_plugin_host

        self._plugins_registered = True
        load_plugin_host().register_cli(self, reserved=BUILTIN_COMMANDS)


@click.group(
    cls=CapaGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Plugins may add command groups (for example `capa watlow`); "
    "`capa plugins list` shows which.",
)
@click.version_option(__version__, "-V", "--version", prog_name="capa")
def cli() -> None:
    """capa: run lab experiments on real instruments and record sealed run bundles."""


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and turn every failure into one line on stderr and an exit code."""
    from capa.cli.common import EARLY_SIGINT

    EARLY_SIGINT.install()  # Ctrl-C is never lost, even if the parent ignored SIGINT
    code: int
    try:
        result = cli.main(args=argv, prog_name="capa", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.Abort:
        click.echo("capa: aborted", err=True)
        code = 130
    except click.UsageError as exc:  # every subcommand's, plugins' included: one boundary
        exc.show()
        code = EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("capa: interrupted", err=True)
        code = 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a message.
        sys.stderr.close()
        code = 0
    except Exception as exc:
        code = _report(exc)
    finally:
        if argv is None:
            # The process is exiting with `code`: a late Ctrl-C during interpreter
            # shutdown must not replace it by death by SIGINT.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:  # called in-process (tests, embedding): give SIGINT back
            EARLY_SIGINT.uninstall()
    sys.exit(code)


def _report(exc: Exception) -> int:
    from capa.errors import CapaError

    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, CapaError):
        click.echo(f"capa: error: {exc}", err=True)
        return exc.exit_code
    hint = "" if debug_enabled() else " (set CAPA_DEBUG=1 for the traceback)"
    click.echo(f"capa: internal error: {type(exc).__name__}: {exc}{hint}", err=True)
    return EXIT_INTERNAL_ERROR
