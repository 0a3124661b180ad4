"""The one exception hierarchy of capa.

Every error capa raises on purpose derives from :class:`CapaError`. Each class carries the
exit code the command line maps it to, so the single error boundary in :mod:`capa.cli.main`
turns any of them into one line on stderr and that code, without knowing the command that
raised it. Messages name the configuration path or the device concerned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "BundleError",
    "CapaError",
    "ConductorStateError",
    "ConfigError",
    "ContractError",
    "DeviceError",
    "DuplicateComponentError",
    "EmissionError",
    "FinalizeError",
    "IntegrityError",
    "MissingDependencyError",
    "PluginError",
    "PoolStateError",
    "ResourceConflict",
    "RunnerStateError",
    "TrustError",
    "UnknownComponentError",
    "UnknownDeviceError",
    "WorkerStateError",
]


class CapaError(Exception):
    """Base class of every error capa raises deliberately.

    Attributes:
        exit_code: the process exit code the CLI boundary uses for this error when it
            escapes a command (seed 001: 2 is "something went wrong before the engine
            started", 3 is reserved for integrity failures).
    """

    exit_code: ClassVar[int] = 2


class ConfigError(CapaError):
    """A configuration file could not be read or is invalid (exit 2, nothing written)."""


class PluginError(CapaError):
    """A plugin could not be loaded, or a component it provides is unusable."""


class ContractError(PluginError):
    """A component class violates its contract (missing id, bad config model, ...)."""


class DuplicateComponentError(PluginError):
    """Two distributions registered a component of one kind under the same id."""


class UnknownComponentError(PluginError):
    """A component id was asked for that no loaded plugin provides.

    The message lists the ids that are available, so a typo is obvious.
    """

    def __init__(self, kind: str, component_id: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.component_id = component_id
        self.available = sorted(available)
        listing = ", ".join(self.available) if self.available else "none are installed"
        super().__init__(f"unknown {kind} id {component_id!r}; available: {listing}")


class TrustError(PluginError):
    """A plugin is not trusted by ``plugins.lock`` or the lock itself is unusable."""


class BundleError(CapaError):
    """A run bundle is missing, malformed, or cannot be written."""


class FinalizeError(BundleError):
    """Finalizing a bundle failed (exit 3, as seed 001 specifies for ``capa finalize``)."""

    exit_code: ClassVar[int] = 3


class IntegrityError(BundleError):
    """A sealed bundle's files do not match ``manifest.sha256`` (exit 3)."""

    exit_code: ClassVar[int] = 3


class MissingDependencyError(CapaError, ImportError):
    """An optional library a feature needs is not installed (exit 2).

    The message names the library and the extra that installs it
    (``pip install 'capa[netcdf]'``); capa itself never requires it.
    """


class DeviceError(CapaError):
    """A device could not be opened, stopped answering, or failed during a run.

    Adapters may raise it from ``open()`` with a message naming the port or address;
    the worker pool wraps any other exception from ``open()`` in it, naming the device.
    """


class EmissionError(DeviceError):
    """An adapter emitted something the run cannot record (wrong shape, length or type).

    The message names the device and the field. The rows are counted as dropped
    (``invalid_emission``) and the failure is handled by the device's ``on_failure``.
    """


class ConductorStateError(CapaError):
    """An operation arrived while the conductor was in a state that refuses it.

    Typically a command dispatched during DRAINING, which would race with the adapter's
    ``stop()``.
    """


class PoolStateError(CapaError):
    """The worker pool is in a state that does not permit the attempted operation."""


class WorkerStateError(CapaError):
    """A worker was asked for an illegal state transition."""


class RunnerStateError(CapaError):
    """A worker runner (thread or inline test backend) was called out of order."""


class ResourceConflict(CapaError):
    """Two devices claim one hardware resource in incompatible ways.

    Attributes:
        conflicting_names: the device names involved.
    """

    def __init__(self, message: str, conflicting_names: Iterable[str]) -> None:
        self.conflicting_names = tuple(conflicting_names)
        super().__init__(message)


class UnknownDeviceError(CapaError):
    """A command named a device that the configuration does not define.

    Attributes:
        device: the name that was asked for.
        configured_names: the device names that do exist.
    """

    def __init__(self, device: str, configured_names: Iterable[str]) -> None:
        self.device = device
        self.configured_names = sorted(configured_names)
        names = ", ".join(self.configured_names) or "none"
        super().__init__(f"unknown device {device!r}; configured devices: {names}")
