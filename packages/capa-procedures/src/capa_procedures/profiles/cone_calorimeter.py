"""``pyrolysis.cone_calorimeter``: what a cone-calorimeter pyrolysis run must carry.

A specimen of known material and thickness on a balance, under a radiant heater whose
temperature capa sets, with the incident heat flux measured: without any of these the
bundle cannot be analysed (mass-loss rate needs the mass in a mass unit, a comparison
between runs needs the heat flux in kW/m2 and the specimen's thickness). The profile
checks the experiment for them before a run, and records in the manifest which channel
played which role, so analysis code never guesses.

Roles and how a channel is found for each (explicitly with ``config.channels``, else the
one channel of the listed kind that qualifies):

============== ================= ==============================================
role           channel kind      must be
============== ================= ==============================================
heater         ``temperature``   writable (the heater's set point), a temperature unit
specimen_mass  ``mass``          a mass unit (mg, g, kg)
heat_flux      ``heat_flux``     a heat-flux unit (kW/m2, W/m2): a gauge recorded in
                                 volts needs its calibration
============== ================= ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

import capa

__all__ = ["ConeCalorimeterPyrolysis"]

Role = Literal["heater", "specimen_mass", "heat_flux"]

_TEMPERATURE_UNITS = frozenset({"degC", "°C", "C", "K", "degF", "°F", "F"})
_MASS_UNITS = frozenset({"mg", "g", "kg"})
_HEAT_FLUX_UNITS = frozenset({"kW/m2", "kW/m^2", "kW m-2", "W/m2", "W/m^2", "W m-2"})


class _Rule:
    """How one role is recognised and checked."""

    def __init__(self, kind: str, units: frozenset[str], what: str, *, writable: bool) -> None:
        self.kind = kind
        self.units = units
        self.what = what
        self.writable = writable

    def qualifies(self, ch: capa.ProfileChannel) -> bool:
        return ch.kind == self.kind and (ch.writable or not self.writable)


_RULES: dict[Role, _Rule] = {
    "heater": _Rule("temperature", _TEMPERATURE_UNITS, "a temperature", writable=True),
    "specimen_mass": _Rule("mass", _MASS_UNITS, "a mass", writable=False),
    "heat_flux": _Rule("heat_flux", _HEAT_FLUX_UNITS, "a heat flux", writable=False),
}


class ConeCalorimeterPyrolysis(capa.Profile):
    """Cone-calorimeter pyrolysis: specimen facts, heater, specimen mass and heat flux.

    Errors (the run is refused): sample material or thickness missing; no channel, or an
    ambiguous choice, for a role; a role's channel in an incompatible unit; a heater
    channel that cannot be written. Warnings (recorded as ``profile.preflight.warning``
    events): no initial specimen mass in ``sample.mass_g``; a method without a
    ``safe_shutdown`` step.
    """

    id: ClassVar[str] = "pyrolysis.cone_calorimeter"
    name: ClassVar[str] = "Cone-calorimeter pyrolysis"

    class Config(capa.ConfigModel):
        """Options of the cone-calorimeter profile."""

        channels: dict[Role, str] = Field(
            default_factory=dict,
            description="Channel for each role (heater, specimen_mass, heat_flux) when it "
            "cannot be found by its kind.",
        )
        require_safe_shutdown: bool = Field(
            default=True, description="Warn when the method has no safe_shutdown step."
        )

    config: Config

    def check(self, subject: capa.ProfileSubject) -> list[capa.ProfileFinding]:
        """Sample facts, the three roles, and the method's safe shutdown."""
        findings = self._sample(subject.sample)
        for role in _RULES:
            findings.extend(self._role(role, subject)[1])
        wants_shutdown = self.config.require_safe_shutdown and bool(subject.step_kinds)
        if wants_shutdown and "safe_shutdown" not in subject.step_kinds:
            findings.append(
                _warning(
                    "profile.no_safe_shutdown",
                    "the method has no safe_shutdown step: an aborted run leaves the "
                    "heater at its last set point",
                    ("method",),
                )
            )
        return findings

    def manifest_fields(self, subject: capa.ProfileSubject) -> Mapping[str, Any]:
        """``roles``: the channel chosen for each role."""
        roles = {role: self._role(role, subject)[0] for role in _RULES}
        return {"roles": {k: v for k, v in roles.items() if v is not None}}

    # ------------------------------------------------------------------ parts
    @staticmethod
    def _sample(sample: Mapping[str, Any]) -> list[capa.ProfileFinding]:
        findings = []
        for key, why in (
            ("material", "the specimen's material"),
            ("thickness_mm", "the specimen's thickness in mm"),
        ):
            if sample.get(key) in (None, ""):
                findings.append(
                    _error(
                        "profile.sample_field_missing",
                        f"a cone-calorimeter run must record {why}: set sample.{key}",
                        ("sample", key),
                    )
                )
        if sample.get("mass_g") is None:
            findings.append(
                _warning(
                    "profile.sample_mass_missing",
                    "sample.mass_g is not set: the initial mass will come from the balance only",
                    ("sample",),
                )
            )
        return findings

    def _role(
        self, role: Role, subject: capa.ProfileSubject
    ) -> tuple[str | None, list[capa.ProfileFinding]]:
        rule = _RULES[role]
        named = self.config.channels.get(role)
        if named is not None:
            ch = subject.channels.get(named)
            if ch is None:
                return None, [
                    _error(
                        "profile.channel_unknown",
                        f"{role}: no channel named {named!r} in the hardware file",
                        ("profile", "config", "channels", role),
                    )
                ]
            return ch.name, self._fits(role, rule, ch)
        candidates = [ch for ch in subject.channels.values() if rule.qualifies(ch)]
        if len(candidates) == 1:
            return candidates[0].name, self._fits(role, rule, candidates[0])
        writable = " writable" if rule.writable else ""
        if not candidates:
            message = (
                f"{role}: no{writable} channel of kind {rule.kind!r}; declare one or name it "
                f"in profile.config.channels.{role}"
            )
        else:
            names = ", ".join(ch.name for ch in candidates)
            message = (
                f"{role}: {len(candidates)}{writable} channels of kind {rule.kind!r} ({names}); "
                f"name the one to use in profile.config.channels.{role}"
            )
        return None, [_error("profile.channel_role", message, ("profile",))]

    @staticmethod
    def _fits(role: Role, rule: _Rule, ch: capa.ProfileChannel) -> list[capa.ProfileFinding]:
        findings = []
        if ch.unit not in rule.units:
            hint = " (add a calibration to the gauge's units)" if ch.unit == "V" else ""
            findings.append(
                _error(
                    "profile.channel_unit",
                    f"{role}: channel {ch.name!r} records {ch.unit or 'no unit'!s}, not "
                    f"{rule.what} unit ({', '.join(sorted(rule.units))}){hint}",
                    channel=ch.name,
                )
            )
        if rule.writable and not ch.writable:
            findings.append(
                _error(
                    "profile.channel_not_writable",
                    f"{role}: channel {ch.name!r} cannot be written (it must be the heater's "
                    "set point)",
                    channel=ch.name,
                )
            )
        return findings


def _error(
    code: str, message: str, loc: tuple[str | int, ...] = (), *, channel: str | None = None
) -> capa.ProfileFinding:
    return capa.ProfileFinding(capa.Severity.ERROR, code, message, loc, channel)


def _warning(code: str, message: str, loc: tuple[str | int, ...] = ()) -> capa.ProfileFinding:
    return capa.ProfileFinding(capa.Severity.WARNING, code, message, loc)
