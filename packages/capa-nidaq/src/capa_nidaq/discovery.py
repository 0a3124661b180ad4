"""Discovery and handshake through ``nidaqmx.system`` (read-only).

Without the NI driver both say "NI-DAQmx driver not installed" in one line: discovery
raises :class:`~capa_nidaq.ni.DriverMissingError` (the CLI shows it as the adapter's
note), the handshake returns ``ok=False``.
"""

from __future__ import annotations

from typing import Any

from capa import DiscoveredDevice, HandshakeResult
from capa_nidaq.params import NidaqParams

__all__ = ["describe", "discover_devices", "handshake"]


def describe(device: Any) -> dict[str, Any]:
    """Identity of one ``nidaqmx.system.Device``: name, product type, serial number."""
    serial = int(device.serial_num)
    return {"name": device.name, "product_type": device.product_type, "serial": f"{serial:X}"}


def discover_devices(adapter_id: str, grpc_server: str | None) -> list[DiscoveredDevice]:
    """Every device the driver (or gRPC server) lists.

    Raises:
        DriverMissingError: no NI-DAQmx driver on this machine.
    """
    from capa_nidaq.ni import system

    found = []
    with system(grpc_server) as sys_:
        idents = [describe(dev) for dev in sys_.devices]
    for ident in idents:
        params: dict[str, Any] = {"device": ident["name"]}
        if grpc_server:
            params["grpc_server"] = grpc_server
        found.append(
            DiscoveredDevice(
                adapter=adapter_id,
                resource_id=f"daqmx:{ident['name']}",
                description=f"{ident['product_type']} (serial {ident['serial']})",
                params=params,
            )
        )
    return found


def handshake(params: NidaqParams) -> HandshakeResult:
    """Identify every device the task's channels live on; never raises."""
    if params.simulated:
        return HandshakeResult(True, "simulated NI-DAQmx device", {"model": "sim://"})
    try:
        import nidaqmx.errors
    except ImportError as exc:
        return HandshakeResult(False, f"NI-DAQmx driver not installed (nidaqmx: {exc})")
    from capa_nidaq.ni import DriverMissingError, system

    try:
        with system(params.grpc_server) as sys_:
            present = {d.name.lower(): d for d in sys_.devices}
            wanted = sorted({ch.physical_channel.split("/", 1)[0] for ch in params.channels})
            missing = [w for w in wanted if w.lower() not in present]
            if missing:
                return HandshakeResult(
                    False,
                    f"device(s) {', '.join(missing)} not found; the driver lists "
                    f"{', '.join(sorted(d.name for d in present.values())) or 'none'}",
                )
            identity = {w: describe(present[w.lower()]) for w in wanted}
    except DriverMissingError as exc:
        return HandshakeResult(False, str(exc))
    except (nidaqmx.errors.Error, OSError) as exc:
        return HandshakeResult(False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    detail = "; ".join(
        f"{w}: {i['product_type']} serial {i['serial']}" for w, i in identity.items()
    )
    return HandshakeResult(True, detail, identity)
