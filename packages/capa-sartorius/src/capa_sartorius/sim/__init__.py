"""Wire-level simulator of a Sartorius balance (SBI and xBPI).

- :class:`BalanceModel`: the physics (specimen losing mass, tare, zero, settling,
  overload / underload, internal adjustment).
- :class:`SbiResponder`, :class:`XbpiResponder`: the protocols, bytes in / bytes out.
- :class:`PtySimulator`: both behind a pseudo-terminal, with autoprint and fault injection.
- :func:`parse_sim_url`: the ``sim://?...`` port syntax of hardware files.
"""

from __future__ import annotations

from capa_sartorius.sim.model import BalanceConfig, BalanceModel, BalanceState
from capa_sartorius.sim.pty import Fault, PtySimulator
from capa_sartorius.sim.responders import SbiResponder, make_responder
from capa_sartorius.sim.url import SimSpec, is_sim_url, parse_sim_url
from capa_sartorius.sim.xbpi_responder import XbpiResponder

__all__ = [
    "BalanceConfig",
    "BalanceModel",
    "BalanceState",
    "Fault",
    "PtySimulator",
    "SbiResponder",
    "SimSpec",
    "XbpiResponder",
    "is_sim_url",
    "make_responder",
    "parse_sim_url",
]
