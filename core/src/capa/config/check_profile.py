"""The profile layer of experiment validation: does the run carry what its kind needs?

Runs after the reference layer, on an experiment that names a ``profile`` (or on the one
``capa profile validate --profile ID`` names): resolves the profile id, validates its
``config`` and turns every :class:`~capa.components.profile.ProfileFinding` into a located
:class:`~capa.problems.Problem` (file, key and line), so profile findings read exactly like
every other validation problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from capa.components.profile import Profile, ProfileChannel, ProfileFinding, ProfileSubject
from capa.config.problems import Collector, Section, did_you_mean
from capa.problems import Problem

if TYPE_CHECKING:
    from capa.config.check_hardware import ResolvedHardware
    from capa.config.check_method import ResolvedMethod
    from capa.config.experiment import ExperimentConfig, ProfileRef
    from capa.plugins.host import PluginHost

__all__ = ["CheckedProfile", "check_profile", "profile_subject"]


@dataclass(frozen=True)
class CheckedProfile:
    """A profile that applied to an experiment, and what it found.

    Attributes:
        profile: the profile instance (with its validated config).
        subject: what it was shown.
        findings: every finding, in the profile's order.
        problems: the same findings located in the files (file, key, line).
        dist: distribution that provides the profile.
        version: that distribution's version.
    """

    profile: Profile
    subject: ProfileSubject
    findings: tuple[ProfileFinding, ...]
    problems: tuple[Problem, ...]
    dist: str
    version: str

    def manifest_entry(self) -> dict[str, Any]:
        """``manifest.profile``: which profile, from where, and what it recorded."""
        return {
            "id": self.profile.id,
            "dist": self.dist,
            "version": self.version,
            "warnings": [f.message for f in self.findings if f.severity.value == "warning"],
            **dict(self.profile.manifest_fields(self.subject)),
        }


def profile_subject(
    exp: ExperimentConfig, hardware: ResolvedHardware, method: ResolvedMethod | None
) -> ProfileSubject:
    """The plain-data view of a resolved experiment that profiles check."""
    channels = {}
    for ch in hardware.config.channels:
        device = hardware.devices.get(ch.source.device)
        channels[ch.name] = ProfileChannel(
            name=ch.name,
            kind=ch.kind,
            unit=ch.value_unit,
            device=ch.source.device,
            adapter=device.cls.id if device is not None else "",
            capabilities=frozenset(device.cls.capabilities) if device is not None else frozenset(),
            writable=hardware.channel_writable(ch.name),
            plot_group=ch.plot_group,
        )
    steps = tuple(s.kind for s in method.steps) if method is not None else ()
    return ProfileSubject(
        sample=exp.sample.model_dump(mode="json"),
        operator=exp.operator.model_dump(mode="json"),
        procedure=exp.procedure.id,
        tags=tuple(exp.tags),
        custom=dict(exp.custom),
        channels=channels,
        step_kinds=steps,
    )


def check_profile(
    ref: ProfileRef,
    exp: ExperimentConfig,
    hardware: ResolvedHardware,
    method: ResolvedMethod | None,
    *,
    root: Section,
    host: PluginHost,
    col: Collector,
    ref_loc: tuple[str, ...] = ("profile",),
) -> CheckedProfile | None:
    """Apply the profile ``ref`` names; record its findings in ``col``.

    ``ref_loc`` is where the reference stands in the experiment (``()`` when it came from
    the command line), so an unknown id or a bad config is reported at the right key.
    """
    cls = host.profiles.get(ref.id)
    if cls is None:
        available = host.profiles.ids()
        col.error(
            root,
            "plugin.profile_unknown",
            (*ref_loc, "id") if ref_loc else (),
            f"unknown profile {ref.id!r}{did_you_mean(ref.id, available)}; "
            f"available: {', '.join(available) or 'none installed'}",
        )
        return None
    config = col.validate(
        cls.Config,
        ref.config,
        root.at(*ref_loc, "config") if ref_loc else root,
        plugin=f"profile {ref.id!r}",
    )
    if config is None:
        return None
    subject = profile_subject(exp, hardware, method)
    profile = cls(config)
    try:
        findings = tuple(profile.check(subject))
    except Exception as exc:  # a plugin's bug is a located problem, never a traceback
        col.error(
            root,
            "plugin.error",
            (*ref_loc, "id") if ref_loc else (),
            f"profile {ref.id!r} check() raised {type(exc).__name__}: {exc}",
        )
        return None
    problems = []
    for finding in findings:
        section, loc = _locate(finding, root, hardware)
        problems.append(section.problem(finding.severity, finding.code, loc, finding.message))
    col.problems.extend(problems)
    record = host.profiles.record(ref.id)
    return CheckedProfile(profile, subject, findings, tuple(problems), record.dist, record.version)


def _locate(
    finding: ProfileFinding, root: Section, hardware: ResolvedHardware
) -> tuple[Section, tuple[str | int, ...]]:
    if finding.channel is not None:
        for i, ch in enumerate(hardware.config.channels):
            if ch.name == finding.channel:
                return hardware.section, ("channels", i)
    return root, finding.loc
