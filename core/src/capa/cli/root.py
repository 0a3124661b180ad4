"""The ``capa`` click group: built-in commands imported lazily, plugin commands listed.

A built-in command's module is imported only when that command runs or when the root help
is rendered; the root help also lists the commands plugins add (``capa_register_cli``),
which loads the plugins the plugin mode allows — in production mode only those
``plugins.lock`` admits. The rendered root help is cached (:mod:`capa.cli.helpcache`), so
``capa --help`` normally imports neither click nor any command module nor plugin.
"""

from __future__ import annotations

import importlib

import click

from capa import __version__
from capa.cli import helpcache
from capa.errors import CapaError

__all__ = ["BUILTIN_COMMANDS", "CapaGroup", "cli"]

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


class CapaGroup(click.Group):
    """Root group resolving built-in commands lazily and plugin commands on demand."""

    _plugins_registered = False
    _plugin_problem: str | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in commands and the commands of every plugin the mode admits."""
        try:
            self.register_plugin_commands()
        except CapaError as exc:
            # e.g. production mode without a plugins.lock: the built-in commands are
            # still listed, and the help says why no plugin command is.
            self._plugin_problem = str(exc)
        return sorted({*BUILTIN_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import a built-in command's module, or load the plugins for any other name."""
        target = BUILTIN_COMMANDS.get(cmd_name)
        if target is not None:
            module_name, attr = target.split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        if cmd_name not in self.commands:
            self.register_plugin_commands()
        return self.commands.get(cmd_name)

    def register_plugin_commands(self) -> None:
        """Load the plugins (once) and let them add their command groups.

        Raises:
            TrustError: production mode without a usable ``plugins.lock``.
        """
        if self._plugins_registered:
            return
        from capa.cli.common import load_plugin_host

        host = load_plugin_host()  # production mode: only what plugins.lock admits
        self._plugins_registered = True
        host.register_cli(self, reserved=BUILTIN_COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Built-in commands, then plugin commands under their own heading."""
        names = self.list_commands(ctx)
        for title, subset in (
            ("Commands", [n for n in names if n in BUILTIN_COMMANDS]),
            ("Plugin commands", [n for n in names if n not in BUILTIN_COMMANDS]),
        ):
            shown = [(n, c) for n in subset if (c := self.get_command(ctx, n)) and not c.hidden]
            if shown:
                # the room click's own listing leaves for a description (3x the spacing)
                limit = formatter.width - 6 - max(len(n) for n, _ in shown)
                with formatter.section(title):
                    formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in shown])

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The epilog, and why plugin commands are missing when they could not be loaded."""
        super().format_epilog(ctx, formatter)
        if self._plugin_problem is not None:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(f"Plugin commands not listed: {self._plugin_problem}")

    def get_help(self, ctx: click.Context) -> str:
        """Render the help (as click does) and cache the root listing it produced."""
        formatter = ctx.make_formatter()
        self.format_help(ctx, formatter)
        text = formatter.getvalue().rstrip("\n")
        # Cache a complete root listing for the next `capa --help`, keyed by the width
        # click wrapped it to (CliRunner's forced width never matches a real terminal's).
        if (
            ctx.parent is None
            and self._plugin_problem is None
            and formatter.width == helpcache.help_width()
        ):
            helpcache.store(text + "\n", formatter.width)
        return text


@click.group(
    cls=CapaGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": helpcache.MAX_CONTENT_WIDTH,
    },
    epilog="`capa plugins list` shows which plugin provides which command.",
)
@click.version_option(__version__, "-V", "--version", prog_name="capa")
def cli() -> None:
    """capa: run lab experiments on real instruments and record sealed run bundles."""
