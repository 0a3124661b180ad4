"""Handshake, discovery and ``sim://`` start-up for the balance adapter (read-only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import capa
from capa_sartorius import sbi, xbpi
from capa_sartorius.params import BalanceParams
from capa_sartorius.sim import BalanceModel, PtySimulator, parse_sim_url
from capa_sartorius.transport import BalanceCommError, SerialLink

if TYPE_CHECKING:
    from capa_sartorius.adapter import SartoriusBalance

__all__ = ["MAX_PORTS", "candidate_ports", "discover", "identify", "start_simulator"]

MAX_PORTS = 32
"""At most this many serial ports are probed by :func:`discover`."""
DISCOVERY_BUDGET_S = 20.0
"""Discovery stops probing after this long, whatever is left."""
PROBE_TIMEOUT_S = 0.3


def start_simulator(params: BalanceParams) -> PtySimulator:
    """Start the simulator a ``sim://`` port asks for; returns it running."""
    spec = parse_sim_url(params.port)
    autoprint = params.autoprint if spec.autoprint is None else spec.autoprint
    rate = spec.autoprint_hz if spec.autoprint_hz is not None else params.rate_hz
    sim = PtySimulator(
        BalanceModel(spec.config),
        protocol=spec.protocol or params.protocol,
        autoprint_hz=rate if autoprint else 0.0,
        # A balance answers its own SBN and the factory address 9; give the simulated one
        # the SBN the driver addresses (factory setting 0 when it uses address 9).
        sbn=0 if params.sbn == xbpi.BALANCE_SBN_DEFAULT else params.sbn,
    )
    sim.start()
    return sim


_XBPI_IDENTITY: dict[str, tuple[int, int, Callable[[bytes], str]]] = {
    # what -> (opcode, reply subtype, body decoder), as a Cubis answers them
    "model": (xbpi.OP_READ_MODEL, xbpi.SUB_TEXT20, xbpi.decode_text),
    "serial": (xbpi.OP_READ_FACTORY_NUMBER, xbpi.SUB_FACTORY_NUMBER, xbpi.decode_factory_number),
    "software": (xbpi.OP_READ_SOFTWARE, xbpi.SUB_SOFTWARE, xbpi.decode_software),
}


def _text(link: SerialLink, params: BalanceParams, which: str) -> str:
    if params.protocol == "sbi":
        command = {"model": sbi.MODEL, "serial": sbi.SERIAL, "software": sbi.SOFTWARE}[which]
        # An autoprinting balance keeps sending weight lines: pass over them.
        ex = link.sbi_request(command, skip=_is_weight_line)
        return sbi.parse_text(ex.raw)
    opcode, subtype, decode = _XBPI_IDENTITY[which]
    reply = link.xbpi_request(opcode)
    if reply.is_error:
        raise BalanceCommError("device_error", f"{which}: {reply.error_text()}", reply.raw)
    if reply.subtype != subtype:
        raise BalanceCommError(
            "garbage", f"{which}: unexpected xBPI reply subtype 0x{reply.subtype:02x}", reply.raw
        )
    try:
        return decode(reply.body)
    except xbpi.XbpiError as exc:
        raise BalanceCommError("garbage", f"{which}: {exc}", reply.raw) from exc


def _is_weight_line(line: bytes) -> bool:
    try:
        sbi.parse_line(line)
    except sbi.SbiParseError:
        return False
    return True


def identify(params: BalanceParams) -> capa.HandshakeResult:
    """Open the port, read the balance's identity, close. Never writes a setting."""
    sim = start_simulator(params) if params.port.startswith("sim://") else None
    link = SerialLink(params, (lambda: sim.path) if sim else (lambda: params.port))
    try:
        link.open()
        identity = {k: _text(link, params, k) for k in ("model", "serial", "software")}
    except (BalanceCommError, sbi.SbiParseError) as exc:
        return capa.HandshakeResult(ok=False, detail=f"{params.port} ({params.protocol}): {exc}")
    finally:
        link.close()
        if sim is not None:
            sim.stop()
    if not identity["model"]:
        return capa.HandshakeResult(ok=False, detail=f"{params.port}: empty model reply")
    detail = f"Sartorius {identity['model']} s/n {identity['serial']} ({params.protocol})"
    return capa.HandshakeResult(
        ok=True, detail=detail, identity={**identity, "protocol": params.protocol}
    )


def candidate_ports() -> list[str]:
    """Serial ports pyserial lists on this machine (sorted, at most :data:`MAX_PORTS`)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports())[:MAX_PORTS]


def discover(cls: type[SartoriusBalance]) -> Sequence[capa.DiscoveredDevice]:
    """Probe each candidate port with each protocol; stop at the time budget."""
    found: list[capa.DiscoveredDevice] = []
    deadline = time.monotonic() + DISCOVERY_BUDGET_S
    for port in candidate_ports():
        for protocol in ("sbi", "xbpi"):
            if time.monotonic() > deadline:
                return found
            params = BalanceParams(
                port=port, protocol=protocol, timeout_s=PROBE_TIMEOUT_S, retries=0
            )
            result = identify(params)
            if result.ok:
                found.append(
                    capa.DiscoveredDevice(
                        adapter=cls.id,
                        resource_id=cls.resource_id(params),
                        description=result.detail,
                        params={"port": port, "protocol": protocol},
                    )
                )
                break
    return found
