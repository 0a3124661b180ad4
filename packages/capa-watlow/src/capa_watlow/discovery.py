"""Find EZ-Zone PM controllers: serial ports × protocols × baud rates × addresses.

The scan is bounded and read-only: for each port it tries each protocol at its usual
baud rates, asking addresses 1-16 for their Hardware ID with a short timeout, and stops
trying baud rates on a port once one of them gets answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import capa
from capa_watlow.client import ModbusRtuClient, make_client
from capa_watlow.errors import CommError, DeviceRefused
from capa_watlow.params import ENUM_HIGH_LOW, IDENTITY, WORD_ORDER
from capa_watlow.transport import SharedPort

__all__ = ["SCAN_PLAN", "discover_ports", "list_serial_ports"]

SCAN_PLAN: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("stdbus", (38400, 9600, 19200)),
    ("modbus_rtu", (9600, 19200, 38400)),
)
"""Protocols and baud rates tried on each port, most likely first."""


def list_serial_ports() -> list[str]:
    """Serial devices pyserial can see (USB-RS485 adapters, built-in ports)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports())


def discover_ports(
    ports: Iterable[str],
    *,
    plan: Sequence[tuple[str, Sequence[int]]] = SCAN_PLAN,
    addresses: Iterable[int] = range(1, 17),
    timeout_s: float = 0.05,
) -> list[capa.DiscoveredDevice]:
    """Controllers that answer on ``ports``; each with the params that would open it."""
    found: list[capa.DiscoveredDevice] = []
    wanted = tuple(addresses)
    for path in ports:
        for protocol, bauds in plan:
            hits = _scan_protocol(path, protocol, bauds, wanted, timeout_s)
            found.extend(hits)
            if hits:
                break  # one protocol per bus
    return found


def _scan_protocol(
    path: str, protocol: str, bauds: Sequence[int], addresses: Sequence[int], timeout_s: float
) -> list[capa.DiscoveredDevice]:
    hardware_id = IDENTITY[0]
    for baud in bauds:
        port = SharedPort(f"serial:{path}", lambda: path, protocol, baud, timeout_s)
        hits = []
        try:
            port.ensure_open()
            for address in addresses:
                client = make_client(
                    port, protocol, address, timeout_s=timeout_s, word_order="low_high"
                )
                params: dict[str, object] = {
                    "port": path, "address": address, "protocol": protocol, "baudrate": baud,
                }  # fmt: skip
                try:
                    if isinstance(client, ModbusRtuClient):
                        _propose_word_order(client, params)
                    hw = int(client.read(hardware_id, 1))
                except (CommError, DeviceRefused):
                    continue
                hits.append(
                    capa.DiscoveredDevice(
                        "watlow.ezzone_pm",
                        f"serial:{path}",
                        f"EZ-Zone PM (hardware id {hw}) at address {address}, "
                        f"{protocol} {baud} baud",
                        params,
                    )
                )
        except CommError:
            return []  # the port cannot be opened at all
        finally:
            port.close()
        if hits:
            return hits
    return []


def _propose_word_order(client: ModbusRtuClient, params: dict[str, object]) -> None:
    # Propose the word order the controller itself is set to (its Modbus Word Order,
    # 17043). A controller without that register keeps the default; open() checks again.
    try:
        (setting,) = client.read_registers(WORD_ORDER.register_for(1), 1)
    except DeviceRefused:
        return
    if setting == ENUM_HIGH_LOW:
        client.word_order = "high_low"
        params["word_order"] = "high_low"
