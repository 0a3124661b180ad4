"""``sim://`` ports: parse the query, build the simulator, share one per URL in a process.

``port = "sim://?seed=1&ambient=25&addresses=1,2&protocol=auto"`` in a hardware file makes
the adapter start this package's simulator behind a pseudo-terminal and talk to it with
the unmodified driver. Adapters naming the same URL (after normalisation) share one
simulator, exactly as controllers on one RS-485 cable share the port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from capa_watlow.modbus import WordOrder
    from capa_watlow.sim.bus import SimProtocol
    from capa_watlow.sim.pty import PtySimulator
    from capa_watlow.units import TemperatureUnit

__all__ = [
    "SimConfig",
    "acquire",
    "is_sim_url",
    "parse_sim_url",
    "release",
    "running",
]

SCHEME = "sim://"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Options of a simulated bus, from a ``sim://`` URL query.

    Attributes:
        seed: noise seed (reproducible runs).
        ambient: ambient and initial temperature, °C.
        addresses: controller addresses on the bus.
        protocol: ``auto`` (both), ``stdbus`` or ``modbus_rtu``.
        instances: control loops per controller.
        tau: plant time constant in seconds.
        noise: process value noise (standard deviation, °C).
        wire_unit: temperature unit on the wire.
        word_order: Modbus 32-bit word order (the controllers' Modbus Word Order
            setting; factory default ``low_high``).
        setpoint: initial closed-loop set point, degC (``None``: the factory 75 degF).
    """

    seed: int = 0
    ambient: float = 25.0
    addresses: tuple[int, ...] = (1,)
    protocol: str = "auto"
    instances: int = 2
    tau: float = 30.0
    noise: float = 0.0
    wire_unit: str = "degF"
    word_order: str = "low_high"
    setpoint: float | None = None

    def canonical(self) -> str:
        """A normalised URL: equal configurations give equal strings (the resource id)."""
        return (
            f"{SCHEME}?seed={self.seed}&ambient={self.ambient:g}"
            f"&addresses={','.join(map(str, self.addresses))}&protocol={self.protocol}"
            f"&instances={self.instances}&tau={self.tau:g}&noise={self.noise:g}"
            f"&wire_unit={self.wire_unit}&word_order={self.word_order}"
            + ("" if self.setpoint is None else f"&setpoint={self.setpoint:g}")
        )

    def build(self, *, link: str | None = None) -> PtySimulator:
        """A (not yet started) pty simulator for this configuration."""
        # Imported here: parsing a URL (hardware-file validation) needs none of them.
        from capa_watlow.sim.bus import SimBus
        from capa_watlow.sim.model import FACTORY_SETPOINT_C, ControllerModel
        from capa_watlow.sim.pty import PtySimulator

        controllers = [
            ControllerModel(
                a,
                instances=self.instances,
                ambient_c=self.ambient,
                tau_s=self.tau,
                seed=self.seed,
                noise_c=self.noise,
                serial=a,
                setpoint_c=FACTORY_SETPOINT_C if self.setpoint is None else self.setpoint,
            )
            for a in self.addresses
        ]
        bus = SimBus(
            controllers,
            protocol=cast("SimProtocol", self.protocol),
            wire_unit=cast("TemperatureUnit", self.wire_unit),
            word_order=cast("WordOrder", self.word_order),
        )
        return PtySimulator(bus, link=link)


def is_sim_url(port: str) -> bool:
    """Whether ``port`` names a simulator rather than a device."""
    return port.startswith(SCHEME)


def parse_sim_url(url: str) -> SimConfig:
    """Parse a ``sim://`` URL; raises ``ValueError`` naming the bad option."""
    parts = urlsplit(url)
    if parts.scheme != "sim" or parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: expected 'sim://' optionally followed by '?key=value&...'")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    options: dict[str, object] = {}
    converters = {
        "seed": int,
        "ambient": float,
        "instances": int,
        "tau": float,
        "noise": float,
        "protocol": str,
        "wire_unit": str,
        "word_order": str,
        "setpoint": float,
    }
    for key, raw in query.items():
        try:
            if key == "addresses":
                options[key] = tuple(int(a) for a in raw.split(",") if a.strip())
            elif key in converters:
                options[key] = converters[key](raw)
            else:
                raise ValueError(f"unknown option {key!r}")
        except ValueError as exc:
            raise ValueError(f"{url!r}: {key}: {exc}") from None
    config = SimConfig(**options)  # type: ignore[arg-type]
    _validate(url, config)
    return config


def _validate(url: str, config: SimConfig) -> None:
    addresses_ok = bool(config.addresses) and all(1 <= a <= 16 for a in config.addresses)
    checks = [
        (config.protocol in ("auto", "stdbus", "modbus_rtu"), "protocol: auto|stdbus|modbus_rtu"),
        (config.wire_unit in ("degC", "degF", "K"), "wire_unit must be degC|degF|K"),
        (config.word_order in ("low_high", "high_low"), "word_order: low_high|high_low"),
        (addresses_ok, "addresses must be 1-16"),
        (1 <= config.instances <= 2, "instances must be 1-2 (loops of a PM)"),
        (config.tau >= 0, "tau must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{url!r}: {message}")


# ---------------------------------------------------------------- process-wide sharing
_lock = threading.Lock()
_running: dict[str, tuple[PtySimulator, int]] = {}


def acquire(url: str) -> PtySimulator:
    """The running simulator for ``url``, started on first use (reference counted)."""
    key = parse_sim_url(url).canonical()
    with _lock:
        sim, refs = _running.get(key, (None, 0))
        if sim is None:
            sim = parse_sim_url(url).build()
            sim.start()
        _running[key] = (sim, refs + 1)
        return sim


def release(url: str) -> None:
    """Drop one reference; the last one stops the simulator."""
    key = parse_sim_url(url).canonical()
    with _lock:
        sim, refs = _running.get(key, (None, 0))
        if sim is None:
            return
        if refs <= 1:
            del _running[key]
            sim.stop()
        else:
            _running[key] = (sim, refs - 1)


def running(url: str) -> PtySimulator | None:
    """The simulator currently serving ``url`` (for tests that inject faults), if any."""
    with _lock:
        entry = _running.get(parse_sim_url(url).canonical())
        return entry[0] if entry else None
