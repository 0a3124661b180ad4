"""The public API of capa is pinned: changing it must be a deliberate act."""

import pytest

import capa

PUBLIC_API = [
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


def test_all_is_sorted_and_pinned():
    assert capa.__all__ == sorted(capa.__all__)
    assert capa.__all__ == PUBLIC_API


def test_every_public_name_resolves_and_has_a_docstring():
    for name in capa.__all__:
        value = getattr(capa, name)
        if name == "__version__":
            continue
        if isinstance(value, type):
            assert (value.__doc__ or "").strip(), f"capa.{name} has no docstring"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = capa.NoSuchThing  # type: ignore[attr-defined]


def test_version_matches_distribution_metadata():
    import importlib.metadata as md

    assert md.version("capa") == capa.__version__
