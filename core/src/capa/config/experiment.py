"""The experiment file (``experiment.yaml``): what to run, on which rig, for whom."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from capa.components.model import ConfigModel
from capa.config.hardware import HardwareConfig
from capa.config.method import MethodConfig
from capa.config.safety import AlarmConfig, InterlockConfig

__all__ = [
    "INLINE_TAG",
    "PATH_TAG",
    "ExperimentConfig",
    "OperatorConfig",
    "ProcedureRef",
    "ProfileRef",
    "RunOptions",
    "RuntimeConfig",
    "SampleConfig",
    "SinkRef",
]


PATH_TAG = "path"
INLINE_TAG = "inline"


def _path_or_inline(value: Any) -> str:
    # A string is a file reference; anything else is validated as the inline table so the
    # error talks about that table's fields rather than "not a string".
    return PATH_TAG if isinstance(value, str) else INLINE_TAG


PathStr = Annotated[str, Field(min_length=1)]
HardwareRef = Annotated[
    Annotated[PathStr, Tag(PATH_TAG)] | Annotated[HardwareConfig, Tag(INLINE_TAG)],
    Discriminator(_path_or_inline),
]
MethodRef = Annotated[
    Annotated[PathStr, Tag(PATH_TAG)] | Annotated[MethodConfig, Tag(INLINE_TAG)],
    Discriminator(_path_or_inline),
]


class ProcedureRef(ConfigModel):
    """Which procedure drives the run, and its options."""

    id: str = Field(description="Procedure id from a plugin (`capa plugins list`).")
    version: str | None = Field(
        default=None, description="PEP 440 specifier the procedure's version must satisfy."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Options, validated by the procedure's Config model."
    )

    @field_validator("version")
    @classmethod
    def _specifier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"{value!r} is not a PEP 440 version specifier") from None
        return value


class OperatorConfig(ConfigModel):
    """Who runs the experiment."""

    id: str = Field(min_length=1, description="Operator id (initials, user name).")
    display_name: str | None = Field(default=None, description="Full name for reports.")


class SampleConfig(ConfigModel):
    """The specimen under test."""

    id: str = Field(min_length=1, description="Sample id.")
    material: str | None = Field(default=None, description="Material name.")
    mass_g: float | None = Field(default=None, gt=0, le=1e9, description="Initial mass in grams.")
    thickness_mm: float | None = Field(default=None, gt=0, le=1e6, description="Thickness in mm.")
    notes: str | None = Field(default=None, description="Free text.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Further sample facts.")


class RuntimeConfig(ConfigModel):
    """Timing limits of the runtime."""

    shutdown_grace_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="Seconds devices get to stop cleanly at the end (at most an hour).",
    )
    loop_lag_warn_ms: float = Field(
        default=50.0,
        gt=0,
        le=60_000,
        description="Event-loop lag that triggers a warning event (at most a minute).",
    )
    saturation_deadline_s: float = Field(
        default=10.0,
        gt=0,
        le=86_400,
        description="Seconds the writer may stay saturated before the run is declared crashed "
        "(at most a day).",
    )


class RunOptions(ConfigModel):
    """What a run records."""

    recording_policy: Literal["procedure_default", "record_all"] = Field(
        default="procedure_default",
        description="procedure_default lets the procedure narrow capture; record_all keeps "
        "every channel.",
    )


class SinkRef(ConfigModel):
    """An extra sink besides the always-on run bundle."""

    id: str = Field(description="Sink id from a plugin.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Options, validated by the sink's Config model."
    )
    on_failure: Literal["warn", "abort"] = Field(
        default="warn",
        description="warn: a failing sink is reported (event) and the run goes on; "
        "abort: the run stops (aborted).",
    )
    queue_size: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Records buffered for this sink; beyond that records are dropped for "
        "it (counted), never blocking the run or the bundle.",
    )


class ProfileRef(ConfigModel):
    """The domain profile the run must satisfy (``capa profile validate``)."""

    id: str = Field(description="Profile id from a plugin (`capa plugins list`).")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Options, validated by the profile's Config model."
    )


class ExperimentConfig(ConfigModel):
    """An experiment (``*.yaml``; TOML accepted): everything ``capa run`` needs."""

    hardware: HardwareRef = Field(
        description="Path to the hardware file (relative to this file), or the table inline."
    )
    method: MethodRef | None = Field(
        default=None, description="Path to the method file, or the method inline."
    )
    procedure: ProcedureRef = Field(description="The procedure that drives the run.")
    operator: OperatorConfig = Field(description="Who runs it.")
    sample: SampleConfig = Field(description="What is tested.")
    calibration_set: str | None = Field(
        default=None, description="Name of the calibration set in force, for the record."
    )
    tags: list[str] = Field(default_factory=list, description="Labels for the run catalog.")
    custom: dict[str, Any] = Field(
        default_factory=dict, description="Free-form data copied to manifest.json."
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="Timing limits.")
    run_options: RunOptions = Field(default_factory=RunOptions, description="Recording.")
    sinks: list[SinkRef] = Field(default_factory=list, description="Extra sinks.")
    alarms: list[AlarmConfig] = Field(
        default_factory=list, description="Alarms of this experiment, besides the rig's."
    )
    interlocks: list[InterlockConfig] = Field(
        default_factory=list, description="Command limits of this experiment, besides the rig's."
    )
    profile: ProfileRef | None = Field(
        default=None,
        description="Domain profile: the metadata and channels this kind of run must carry.",
    )
