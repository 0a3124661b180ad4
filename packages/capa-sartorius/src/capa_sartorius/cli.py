"""``capa sartorius``: commands of the Sartorius plugin (the balance simulator)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

__all__ = ["sartorius"]


@click.group()
def sartorius() -> None:
    """Sartorius balances (SBI / xBPI)."""


@sartorius.command("sim")
@click.option(
    "--pty",
    "link",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Symlink to create, pointing at the simulator's pseudo-terminal; open it as the port.",
)
@click.option("--protocol", type=click.Choice(["sbi", "xbpi"]), default="sbi", show_default=True)
@click.option(
    "--autoprint-hz",
    type=float,
    default=0.0,
    show_default=True,
    help="Send weight lines unprompted at this rate (SBI; 0 = polled only).",
)
@click.option(
    "--mass-g",
    type=float,
    default=50.0,
    show_default=True,
    help="Specimen mass on the pan at start.",
)
@click.option(
    "--loss-g-per-s",
    type=float,
    default=0.0,
    show_default=True,
    help="How fast the specimen loses mass.",
)
@click.option("--capacity-g", type=float, default=220.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sim(
    *,
    link: Path,
    protocol: str,
    autoprint_hz: float,
    mass_g: float,
    loss_g_per_s: float,
    capacity_g: float,
    seed: int,
) -> None:
    """Run a simulated balance on a pseudo-terminal until Ctrl-C (or SIGTERM)."""
    from capa import ConfigError
    from capa_sartorius.sim import BalanceConfig, BalanceModel, PtySimulator

    if link.exists() and not link.is_symlink():
        raise ConfigError(f"--pty {link}: exists and is not a symlink; refusing to replace it")
    if not link.parent.is_dir():
        raise ConfigError(f"--pty {link}: directory {link.parent} does not exist")
    config = BalanceConfig(
        seed=seed, mass_g=mass_g, loss_g_per_s=loss_g_per_s, capacity_g=capacity_g
    )
    sim_ = PtySimulator(
        BalanceModel(config), protocol=protocol, autoprint_hz=autoprint_hz, link=link
    )
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set the event, so a signal arriving at any point (even
    # during start-up) ends the loop and the simulator stops cleanly (symlink removed).
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        sim_.start()
        click.echo(f"sartorius simulator ({protocol}) on {link} -> {sim_.device}")
        while not stop.wait(0.5):
            pass
    finally:
        sim_.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("sartorius simulator stopped")
