"""capa: control and data acquisition for laboratory instruments.

This module is capa's public API — the names plugins may import. Attributes resolve
lazily (PEP 562) so that ``import capa`` and ``capa --help`` stay instant: pydantic,
pluggy and the component contracts are imported only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Acquisition": "capa.components.adapter",
    "Adapter": "capa.components.adapter",
    "AdapterContext": "capa.components.adapter",
    "Bundle": "capa.read.bundle",
    "BundleError": "capa.errors",
    "CapaError": "capa.errors",
    "ChannelView": "capa.components.context",
    "Command": "capa.components.adapter",
    "CommandResult": "capa.components.adapter",
    "ComponentKind": "capa.components.kinds",
    "ComponentRecord": "capa.plugins.registry",
    "ConductorStateError": "capa.errors",
    "ConfigError": "capa.errors",
    "ConfigModel": "capa.components.model",
    "ContractError": "capa.errors",
    "DeviceError": "capa.errors",
    "DeviceEvent": "capa.components.emissions",
    "DeviceRecords": "capa.components.emissions",
    "DiscoveredDevice": "capa.components.adapter",
    "DuplicateComponentError": "capa.errors",
    "Emission": "capa.components.emissions",
    "EmptyConfig": "capa.components.model",
    "EventRecord": "capa.components.emissions",
    "EventSeverity": "capa.components.emissions",
    "EventWriter": "capa.components.context",
    "FieldSpec": "capa.components.adapter",
    "FinalizeError": "capa.errors",
    "FrameReceipt": "capa.components.emissions",
    "HandshakeResult": "capa.components.adapter",
    "IntegrityError": "capa.errors",
    "MethodRunner": "capa.components.context",
    "PluginError": "capa.errors",
    "PluginHost": "capa.plugins.host",
    "PoolStateError": "capa.errors",
    "Problem": "capa.problems",
    "Procedure": "capa.components.procedure",
    "Profile": "capa.components.profile",
    "ProfileChannel": "capa.components.profile",
    "ProfileFinding": "capa.components.profile",
    "ProfileSubject": "capa.components.profile",
    "ResourceConflict": "capa.errors",
    "RunClock": "capa.clock",
    "RunContext": "capa.components.context",
    "RunRecord": "capa.components.emissions",
    "RunnerStateError": "capa.errors",
    "SampleBatch": "capa.components.emissions",
    "SampleStatus": "capa.components.emissions",
    "SampleRows": "capa.components.emissions",
    "ScalarRows": "capa.components.emissions",
    "Severity": "capa.problems",
    "Sink": "capa.components.sink",
    "SinkContext": "capa.components.context",
    "Step": "capa.components.step",
    "StepConfig": "capa.components.step",
    "StepContext": "capa.components.step",
    "TrustError": "capa.errors",
    "UnknownComponentError": "capa.errors",
    "UnknownDeviceError": "capa.errors",
    "WorkerStateError": "capa.errors",
    "hookimpl": "capa.hookspecs",
    "log_context": "capa.bundle.runlog",
    "open_bundle": "capa.read.bundle",
}

__all__ = [
    "Acquisition",
    "Adapter",
    "AdapterContext",
    "Bundle",
    "BundleError",
    "CapaError",
    "ChannelView",
    "Command",
    "CommandResult",
    "ComponentKind",
    "ComponentRecord",
    "ConductorStateError",
    "ConfigError",
    "ConfigModel",
    "ContractError",
    "DeviceError",
    "DeviceEvent",
    "DeviceRecords",
    "DiscoveredDevice",
    "DuplicateComponentError",
    "Emission",
    "EmptyConfig",
    "EventRecord",
    "EventSeverity",
    "EventWriter",
    "FieldSpec",
    "FinalizeError",
    "FrameReceipt",
    "HandshakeResult",
    "IntegrityError",
    "MethodRunner",
    "PluginError",
    "PluginHost",
    "PoolStateError",
    "Problem",
    "Procedure",
    "Profile",
    "ProfileChannel",
    "ProfileFinding",
    "ProfileSubject",
    "ResourceConflict",
    "RunClock",
    "RunContext",
    "RunRecord",
    "RunnerStateError",
    "SampleBatch",
    "SampleRows",
    "SampleStatus",
    "ScalarRows",
    "Severity",
    "Sink",
    "SinkContext",
    "Step",
    "StepConfig",
    "StepContext",
    "TrustError",
    "UnknownComponentError",
    "UnknownDeviceError",
    "WorkerStateError",
    "__version__",
    "hookimpl",
    "log_context",
    "open_bundle",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static view of the lazy names for type checkers and IDEs
    from capa.bundle.runlog import log_context
    from capa.clock import RunClock
    from capa.components.adapter import (
        Acquisition,
        Adapter,
        AdapterContext,
        Command,
        CommandResult,
        DiscoveredDevice,
        FieldSpec,
        HandshakeResult,
    )
    from capa.components.context import (
        ChannelView,
        EventWriter,
        MethodRunner,
        RunContext,
        SinkContext,
    )
    from capa.components.emissions import (
        DeviceEvent,
        DeviceRecords,
        Emission,
        EventRecord,
        EventSeverity,
        FrameReceipt,
        RunRecord,
        SampleBatch,
        SampleRows,
        SampleStatus,
        ScalarRows,
    )
    from capa.components.kinds import ComponentKind
    from capa.components.model import ConfigModel, EmptyConfig
    from capa.components.procedure import Procedure
    from capa.components.profile import (
        Profile,
        ProfileChannel,
        ProfileFinding,
        ProfileSubject,
    )
    from capa.components.sink import Sink
    from capa.components.step import Step, StepConfig, StepContext
    from capa.errors import (
        BundleError,
        CapaError,
        ConductorStateError,
        ConfigError,
        ContractError,
        DeviceError,
        DuplicateComponentError,
        FinalizeError,
        IntegrityError,
        PluginError,
        PoolStateError,
        ResourceConflict,
        RunnerStateError,
        TrustError,
        UnknownComponentError,
        UnknownDeviceError,
        WorkerStateError,
    )
    from capa.hookspecs import hookimpl
    from capa.plugins.host import PluginHost
    from capa.plugins.registry import ComponentRecord
    from capa.problems import Problem, Severity
    from capa.read.bundle import Bundle, open_bundle
