"""Errors of the Watlow driver, in capa's one exception hierarchy."""

from __future__ import annotations

import capa

__all__ = ["CommError", "CommGarbled", "CommTimeout", "DeviceRefused", "PortConflict"]


class CommError(capa.CapaError):
    """The bus did not deliver a usable reply (timeout, garbled frame, port lost)."""


class CommTimeout(CommError):
    """No (complete) reply within the timeout."""


class CommGarbled(CommError):
    """A reply arrived but failed its checks."""


class DeviceRefused(capa.CapaError):
    """The controller understood the request and answered with an error (a refusal)."""


class PortConflict(capa.ConfigError):
    """Two devices on one port disagree on how to talk on it (protocol, baud rate)."""
