"""``capa gui [CONFIG]``: the operator console (added through ``capa_register_cli``).

Exit codes (seed 001): 0 when the console is closed cleanly (Ctrl-C in its terminal or
"Quit" in the page), whatever the runs inside it did; 2 when CONFIG is refused at launch
(its problems are printed as ``capa validate`` prints them), or the port cannot be bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["gui"]

EXIT_REFUSED = 2


@click.command("gui")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where bundles go (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.option(
    "--plugins-lock",
    type=click.Path(path_type=Path),
    help="plugins.lock to use in production mode (default: ./plugins.lock, then the "
    "user config dir).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback exposes the console to the network "
    "(the token is still required).",
)
@click.option("--port", type=int, default=None, help="Port (default: 8765, else any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser; just print the URL.")
@click.pass_context
def gui(  # noqa: PLR0917 - click passes every option positionally
    ctx: click.Context,
    config: Path | None,
    runs_root: Path | None,
    plugins_lock: Path | None,
    host: str,
    port: int | None,
    no_browser: bool,
) -> None:
    """Open the operator console in the browser: set up, run, watch and review runs.

    Serves a local web page (127.0.0.1 by default) protected by a random token printed
    in the URL. CONFIG, if given, is validated first; a refused CONFIG exits 2.
    """
    ctx.exit(_main(config, runs_root, plugins_lock, host, port, no_browser))


def _main(  # noqa: PLR0917 - mirrors the command's options
    config: Path | None,
    runs_root_opt: Path | None,
    lock_opt: Path | None,
    host: str,
    port: int | None,
    no_browser: bool,
) -> int:
    import capa.embed
    from capa_gui.rig import Rig
    from capa_gui.server import bind, is_loopback, make_server

    runs_root = capa.embed.resolve_runs_root(runs_root_opt).resolve()
    if capa.embed.is_production():
        lock = capa.embed.resolve_lock(lock_opt)
        if lock is not None and lock_opt is None:
            click.echo(f"plugins.lock (auto-discovered): {lock}")
    plugin_host = capa.embed.load_host(lock_opt)
    for blocked in capa.embed.blocked_plugins(plugin_host):
        click.echo(f"capa: warning: plugin blocked: {blocked}", err=True)
    rig = Rig(plugin_host, runs_root)
    if config is not None and not rig.load(config):
        for problem in rig.report.problems:
            click.echo(capa.embed.problem_line(problem), err=problem.is_error)
        click.echo(f"capa: error: {config}: refused; the console was not started", err=True)
        return EXIT_REFUSED
    try:
        sock = bind(host, port)
    except OSError as exc:
        click.echo(f"capa: error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        return EXIT_REFUSED
    if not is_loopback(host):
        click.echo(
            f"capa: warning: listening on {host}: anyone who can reach this machine and "
            "has the token can drive the rig",
            err=True,
        )
    served = make_server(rig, sock)
    rig.start_loop()

    def ready() -> None:
        # Printed from the server's start-up, once it listens and handles Ctrl-C.
        click.echo(f"capa console for {config or 'no experiment'} (runs root {runs_root})")
        click.echo(f"    {served.url}")
        click.echo("Ctrl-C here, or Quit in the page, closes it.")
        sys.stdout.flush()
        if not no_browser:
            import webbrowser

            webbrowser.open(served.url)

    served.console.on_ready = ready
    try:
        served.server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down on Ctrl-C and then re-raises it for the parent process;
        # for the console Ctrl-C is the normal way to close (seed 001: exit 0).
        pass
    finally:
        click.echo("capa console: closing (a run still going is stopped and sealed)")
        rig.shutdown()
    return 0
