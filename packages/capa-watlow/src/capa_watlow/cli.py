"""``capa watlow ...``: the plugin's command group (added through ``capa_register_cli``)."""

from __future__ import annotations

import signal
import threading

import click

__all__ = ["watlow"]


@click.group()
def watlow() -> None:
    """Watlow EZ-Zone PM tools (simulator)."""


@watlow.command("sim")
@click.option(
    "--pty",
    "link",
    required=True,
    type=click.Path(dir_okay=False),
    help="Symlink to create pointing at the simulator's pseudo-terminal.",
)
@click.option(
    "--url",
    default="sim://",
    show_default=True,
    help="Simulator options as a sim:// URL, e.g. 'sim://?addresses=1,2&tau=5'.",
)
def sim(link: str, url: str) -> None:  # fmt: skip
    """Run the wire-level simulator behind a pseudo-terminal until Ctrl-C.

    Prints the terminal's path; PATH is a symlink to it, so a hardware file can use
    ``port = "PATH"`` and survive simulator restarts.
    """
    from capa_watlow.sim import start_pty_simulator
    from capa_watlow.sim.url import parse_sim_url

    try:
        parse_sim_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    simulator = start_pty_simulator(url, link=link)
    try:
        click.echo(f"watlow simulator on {simulator.path} (link {link}); Ctrl-C to stop", err=False)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        signal.signal(signal.SIGTERM, previous)
        click.echo("watlow simulator stopped", err=True)
