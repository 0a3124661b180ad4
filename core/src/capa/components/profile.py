"""The profile contract: the scientific metadata a kind of run must carry.

A *domain profile* (the fifth component kind, registered with ``capa_register_profiles``)
names what an experiment of one scientific kind must declare before it may run — sample
fields, channels of given roles in compatible units — and the checks a careful operator
would make first. Profiles never drive a run: they are consulted by ``capa validate``,
``capa profile validate`` and, before recording starts, by ``capa run`` (their warnings
become ``profile.preflight.warning`` events; their errors refuse the run).

An experiment names its profile::

    profile:
      id: pyrolysis.cone_calorimeter
      config: {channels: {specimen_mass: mass}}

and the profile sees the experiment through a :class:`ProfileSubject`: plain read-only
facts, so a profile needs nothing but this module.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from capa.components.model import ConfigModel
from capa.problems import Severity

__all__ = ["Profile", "ProfileChannel", "ProfileFinding", "ProfileSubject"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ProfileChannel:
    """One declared channel as a profile sees it.

    Attributes:
        name: the channel name.
        kind: what it measures (``temperature``, ``mass``, ``heat_flux`` ...).
        unit: unit of the recorded (calibrated) value.
        device: device that produces it.
        adapter: that device's adapter id.
        capabilities: that adapter's capabilities.
        writable: whether method steps may set it (the device field is writable).
        plot_group: display group, or ``None``.
    """

    name: str
    kind: str
    unit: str
    device: str
    adapter: str
    capabilities: frozenset[str]
    writable: bool
    plot_group: str | None


@dataclass(frozen=True, slots=True)
class ProfileSubject:
    """What a profile checks: the resolved experiment, as plain data.

    Attributes:
        sample: the experiment's ``sample`` table (``id``, ``material``, ``mass_g`` ...).
        operator: the ``operator`` table.
        procedure: the procedure id.
        tags: the run's tags.
        custom: the experiment's ``custom`` table.
        channels: every channel, by name, in file order.
        step_kinds: the kinds of the method's steps in order (empty without a method).
    """

    sample: Mapping[str, Any]
    operator: Mapping[str, Any]
    procedure: str
    tags: tuple[str, ...] = ()
    custom: Mapping[str, Any] = field(default_factory=dict)
    channels: Mapping[str, ProfileChannel] = field(default_factory=dict)
    step_kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProfileFinding:
    """One result of a profile check.

    Attributes:
        severity: ``error`` refuses the run; ``warning`` and ``info`` are recorded.
        code: stable dotted code, conventionally ``profile.<what>``.
        message: one sentence, with the fix where there is one.
        loc: the key of the experiment the finding is about (``("sample", "material")``),
            so the message can name the file and line; ``()`` for the file as a whole.
        channel: when set, the finding is about this channel, and is located at its
            declaration in the hardware file instead of at ``loc``.
    """

    severity: Severity
    code: str
    message: str
    loc: Loc = ()
    channel: str | None = None


class Profile(abc.ABC):
    """Base class of domain profiles.

    Attributes:
        id: stable dotted id (``pyrolysis.cone_calorimeter``).
        name: human name.
        Config: pydantic model of ``profile.config`` in an experiment file
            (``extra="forbid"`` like every component model).
    """

    id: ClassVar[str]
    name: ClassVar[str] = ""
    Config: ClassVar[type[ConfigModel]]

    def __init__(self, config: ConfigModel) -> None:
        self.config = config

    @abc.abstractmethod
    def check(self, subject: ProfileSubject) -> list[ProfileFinding]:
        """Every finding about ``subject`` (empty when the experiment fits the profile).

        Runs at validation time on configuration only: no I/O, no device access.
        """

    def manifest_fields(self, subject: ProfileSubject) -> Mapping[str, Any]:
        """Extra facts recorded under ``manifest.profile`` (e.g. which channel has which role)."""
        return {}
