"""Wire-level simulator of Watlow EZ-Zone PM controllers (Standard Bus and Modbus RTU).

Pieces: :class:`ControllerModel` (thermal plant and parameter table), :class:`SimBus`
(several controllers answering both protocols over any byte stream, with fault
injection), :class:`PtySimulator` (that bus behind a pseudo-terminal on a background
thread) and ``sim://`` URLs (:func:`parse_sim_url`, used by the adapter).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capa_watlow.sim.bus import SimBus
    from capa_watlow.sim.faults import FaultKind, FaultPlan
    from capa_watlow.sim.model import ControllerModel
    from capa_watlow.sim.pty import PtySimulator
    from capa_watlow.sim.url import SimConfig, parse_sim_url

# Resolved on first use: the adapter and its configuration model import `sim.url` to
# parse `sim://` ports, and `capa validate` must not pay for the simulator to do that.
_LAZY = {
    "ControllerModel": "capa_watlow.sim.model",
    "FaultKind": "capa_watlow.sim.faults",
    "FaultPlan": "capa_watlow.sim.faults",
    "PtySimulator": "capa_watlow.sim.pty",
    "SimBus": "capa_watlow.sim.bus",
    "SimConfig": "capa_watlow.sim.url",
    "parse_sim_url": "capa_watlow.sim.url",
}

__all__ = [
    "ControllerModel",
    "FaultKind",
    "FaultPlan",
    "PtySimulator",
    "SimBus",
    "SimConfig",
    "parse_sim_url",
    "start_pty_simulator",
]


def start_pty_simulator(url: str = "sim://", *, link: str | None = None) -> PtySimulator:
    """Start a simulator described by a ``sim://`` URL behind a new pty; returns it running.

    ``sim.path`` is the slave device to open; call ``sim.stop()`` when done.
    """
    from capa_watlow.sim.url import parse_sim_url

    sim = parse_sim_url(url).build(link=link)
    sim.start()
    return sim


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
