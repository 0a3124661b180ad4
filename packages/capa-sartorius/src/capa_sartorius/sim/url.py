"""``sim://`` port URLs: which simulated balance a hardware file asks for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import capa
from capa_sartorius.sim.model import BalanceConfig

__all__ = ["SimSpec", "is_sim_url", "parse_sim_url"]

SCHEME = "sim://"


@dataclass(frozen=True, slots=True)
class SimSpec:
    """A parsed ``sim://`` URL.

    Attributes:
        config: the balance model settings (``seed``, ``mass_g``, ``loss_g_per_s``...).
        protocol: protocol the simulator speaks; ``None`` = the driver's own.
        autoprint: send lines unprompted; ``None`` = follow the driver's ``autoprint``.
        autoprint_hz: autoprint rate; ``None`` = the driver's ``rate_hz``.
    """

    config: BalanceConfig
    protocol: str | None = None
    autoprint: bool | None = None
    autoprint_hz: float | None = None


def is_sim_url(port: str) -> bool:
    """Whether ``port`` names the simulator rather than a serial device."""
    return port.startswith(SCHEME)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(key: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise capa.ConfigError(f"sim:// option {key}={text!r} is not a boolean (use 1 or 0)")


def parse_sim_url(port: str) -> SimSpec:
    """Parse ``sim://?seed=1&mass_g=50&loss_g_per_s=0.01&protocol=sbi&autoprint=1``.

    Raises:
        capa.ConfigError: an unknown option or a value of the wrong type, named.
    """
    if not is_sim_url(port):
        raise capa.ConfigError(f"port {port!r} is not a sim:// URL")
    parts = urlsplit(port)
    if parts.netloc or parts.path not in ("", "/"):
        raise capa.ConfigError(f"sim:// URL takes only a query (sim://?mass_g=50), got {port!r}")
    types = {f.name: f.type for f in dataclasses.fields(BalanceConfig)}
    values: dict[str, Any] = {}
    protocol: str | None = None
    autoprint: bool | None = None
    autoprint_hz: float | None = None
    for key, text in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        try:
            if key == "protocol":
                if text not in ("sbi", "xbpi"):
                    raise capa.ConfigError(f"sim:// protocol must be sbi or xbpi, got {text!r}")
                protocol = text
            elif key == "autoprint":
                autoprint = _flag(key, text)
            elif key == "autoprint_hz":
                autoprint_hz = float(text)
            elif key in types:
                kind = types[key]
                values[key] = (
                    int(text)
                    if kind in (int, "int")
                    else (float(text) if kind in (float, "float") else text)
                )
            else:
                known = ", ".join(sorted([*types, "protocol", "autoprint", "autoprint_hz"]))
                raise capa.ConfigError(f"unknown sim:// option {key!r} (known: {known})")
        except ValueError as exc:
            raise capa.ConfigError(f"sim:// option {key}={text!r}: {exc}") from exc
    return SimSpec(BalanceConfig(**values), protocol, autoprint, autoprint_hz)
