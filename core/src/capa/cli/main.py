"""Entry point of the ``capa`` command and its single error boundary.

``capa --help`` and ``capa --version`` are answered before anything else is imported:
the root help comes from a cache (:mod:`capa.cli.helpcache`) when it is current, so the
common case costs little more than Python's own start-up. Everything else goes through the
click group in :mod:`capa.cli.root`, which imports a built-in command's module only when
that command runs and adds plugin commands through the ``capa_register_cli`` hook.
"""

from __future__ import annotations

import os
import sys
import time

STARTED_EPOCH = time.time()
"""Wall-clock time this module was imported: the start of capa's own code in the process
(``capa run`` logs its start-up phases against it; bench/run_startup.py reads them)."""

TYPE_CHECKING = False  # typing is not imported on the fast path (start-up cost)
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["EXIT_USAGE", "main"]  # `cli` itself lives in capa.cli.root

EXIT_INTERNAL_ERROR = 5
"""Exit code for an error capa did not anticipate (seed 001's "unexpected": a bug)."""

EXIT_USAGE = 64
"""Exit code of a usage error: a missing argument, an unknown option or command, an option
value of the wrong form (EX_USAGE from sysexits.h, seeds 000/001). Click's own code is 2,
which capa reserves for "the input was read and is invalid"."""

_HELP_OPTIONS = ("-h", "--help")
_VERSION_OPTIONS = ("-V", "--version")


def debug_enabled() -> bool:
    """Whether ``CAPA_DEBUG`` asks for full tracebacks."""
    return os.environ.get("CAPA_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def __getattr__(name: str) -> Any:
    # `cli`, `CapaGroup` and `BUILTIN_COMMANDS` live in capa.cli.root (they need click);
    # resolved on use so importing this module stays as cheap as the fast path needs.
    if name in ("cli", "CapaGroup", "BUILTIN_COMMANDS"):
        from capa.cli import root

        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _quick(args: list[str]) -> int | None:
    """Answer ``capa --help`` (cached) or ``capa --version`` without click; else ``None``."""
    if len(args) != 1:
        return None
    if args[0] in _VERSION_OPTIONS:
        from capa import __version__

        text: str | None = f"capa, version {__version__}\n"  # click's version_option text
    elif args[0] in _HELP_OPTIONS:
        from capa.cli import helpcache

        text = helpcache.load()
    else:
        return None
    if text is None:
        return None
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a message.
        sys.stderr.close()
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and turn every failure into one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        quick = _quick(args)
    except KeyboardInterrupt:
        quick = 130
        sys.stderr.write("capa: interrupted\n")
    if quick is not None:
        sys.exit(quick)

    import signal

    from capa.cli.common import EARLY_SIGINT

    EARLY_SIGINT.install()  # Ctrl-C is never lost, even if the parent ignored SIGINT

    import click

    from capa.cli.root import cli

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
    import traceback

    import click

    from capa.errors import CapaError

    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, CapaError):
        click.echo(f"capa: error: {exc}", err=True)
        return exc.exit_code
    hint = "" if debug_enabled() else " (set CAPA_DEBUG=1 for the traceback)"
    click.echo(f"capa: internal error: {type(exc).__name__}: {exc}{hint}", err=True)
    return EXIT_INTERNAL_ERROR
