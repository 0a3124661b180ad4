"""Reference layer for alarms and interlocks: what they watch and limit must exist.

An alarm watches a declared channel (measured or derived); an interlock limits a channel a
command can write. Alarm names are unique across the rig and the experiment, since events
and ``exit_reason`` name alarms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from capa.config.problems import Collector, Section, did_you_mean

if TYPE_CHECKING:
    from capa.config.check_hardware import ResolvedHardware
    from capa.config.safety import AlarmConfig, InterlockConfig

__all__ = ["check_alarm_names", "check_safety"]


def check_safety(
    hw: ResolvedHardware,
    col: Collector,
    *,
    alarms: list[AlarmConfig],
    interlocks: list[InterlockConfig],
    section: Section,
) -> None:
    """Check ``alarms`` / ``interlocks`` declared in ``section`` against the rig ``hw``."""
    names = sorted([*hw.channels, *hw.derived])
    for i, alarm in enumerate(alarms):
        if not hw.has_channel(alarm.channel):
            col.error(
                section,
                "alarm.channel_unknown",
                ("alarms", i, "channel"),
                f"alarm {alarm.name!r} watches channel {alarm.channel!r}, which the hardware "
                f"does not declare{did_you_mean(alarm.channel, names)}",
            )
    for i, lock in enumerate(interlocks):
        if not hw.has_channel(lock.channel):
            col.error(
                section,
                "interlock.channel_unknown",
                ("interlocks", i, "channel"),
                f"interlock on channel {lock.channel!r}, which the hardware does not "
                f"declare{did_you_mean(lock.channel, names)}",
            )
        elif not hw.channel_writable(lock.channel):
            col.warning(
                section,
                "interlock.channel_not_writable",
                ("interlocks", i, "channel"),
                f"interlock on channel {lock.channel!r}, which no command can write: it "
                "never applies",
            )


def check_alarm_names(
    rig: list[AlarmConfig],
    experiment: list[AlarmConfig],
    col: Collector,
    *,
    rig_section: Section,
    experiment_section: Section | None = None,
) -> None:
    """Alarm names are unique across the rig's and the experiment's alarms."""
    seen: set[str] = set()
    for where, section, alarms in (
        ("rig", rig_section, rig),
        ("experiment", experiment_section, experiment),
    ):
        if section is None:
            continue
        for i, alarm in enumerate(alarms):
            if alarm.name in seen:
                col.error(
                    section,
                    "alarm.duplicate_name",
                    ("alarms", i, "name"),
                    f"alarm name {alarm.name!r} is used twice ({where})",
                )
            seen.add(alarm.name)
