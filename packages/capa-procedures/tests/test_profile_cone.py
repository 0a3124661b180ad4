"""The cone-calorimeter pyrolysis profile on hand-made subjects (no files, no devices)."""

from __future__ import annotations

import capa
from capa.testing import check_profile
from capa_procedures.profiles import ConeCalorimeterPyrolysis


def ch(name, kind, unit, *, writable=False):
    return capa.ProfileChannel(
        name=name,
        kind=kind,
        unit=unit,
        device="dev",
        adapter="capa.sim.signals",
        capabilities=frozenset(),
        writable=writable,
        plot_group=None,
    )


GOOD = {
    "sp": ch("sp", "temperature", "degC", writable=True),
    "pv": ch("pv", "temperature", "degC"),
    "mass": ch("mass", "mass", "g"),
    "hf": ch("hf", "heat_flux", "kW/m2"),
}
SAMPLE = {"id": "S", "material": "PMMA", "thickness_mm": 6.0, "mass_g": 12.0}


def subject(channels=None, sample=None, steps=("setpoint", "safe_shutdown")):
    return capa.ProfileSubject(
        sample=SAMPLE if sample is None else sample,
        operator={"id": "op"},
        procedure="capa.builtin.recipe_runner",
        channels=GOOD if channels is None else channels,
        step_kinds=steps,
    )


def run(subj, **config):
    profile = ConeCalorimeterPyrolysis(ConeCalorimeterPyrolysis.Config(**config))
    return [(f.severity.value, f.code) for f in profile.check(subj)], profile


def test_contract():
    check_profile(ConeCalorimeterPyrolysis)


def test_a_complete_rig_is_clean_and_roles_are_recorded():
    found, profile = run(subject())
    assert found == []
    assert profile.manifest_fields(subject()) == {
        "roles": {"heater": "sp", "specimen_mass": "mass", "heat_flux": "hf"}
    }


def test_missing_sample_facts():
    found, _ = run(subject(sample={"id": "S"}))
    assert found.count(("error", "profile.sample_field_missing")) == 2
    assert ("warning", "profile.sample_mass_missing") in found


def test_missing_ambiguous_and_wrong_unit_roles():
    no_flux = {k: v for k, v in GOOD.items() if k != "hf"}
    found, _ = run(subject(channels=no_flux))
    assert found == [("error", "profile.channel_role")]

    two_masses = {**GOOD, "mass2": ch("mass2", "mass", "kg")}
    found, _ = run(subject(channels=two_masses))
    assert found == [("error", "profile.channel_role")]
    found, _ = run(subject(channels=two_masses), channels={"specimen_mass": "mass2"})
    assert found == []

    volts = {**GOOD, "hf": ch("hf", "heat_flux", "V")}
    found, _ = run(subject(channels=volts))
    assert found == [("error", "profile.channel_unit")]


def test_explicit_channels_are_checked():
    found, _ = run(subject(), channels={"heater": "nope"})
    assert found == [("error", "profile.channel_unknown")]
    found, _ = run(subject(), channels={"heater": "pv"})
    assert found == [("error", "profile.channel_not_writable")]


def test_method_without_safe_shutdown_warns():
    found, _ = run(subject(steps=("setpoint", "hold")))
    assert found == [("warning", "profile.no_safe_shutdown")]
    found, _ = run(subject(steps=("setpoint", "hold")), require_safe_shutdown=False)
    assert found == []
    found, _ = run(subject(steps=()))  # free run: no method, nothing to say
    assert found == []
