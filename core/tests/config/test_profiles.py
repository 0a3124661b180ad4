"""Domain profiles: the fifth component kind, the profile validation layer, `capa profile`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import capa
from capa.cli.main import main
from capa.config.validate import validate_experiment
from capa.plugins.contract import check_component
from capa.testing import check_profile

from . import components as tc


class NeedsThickness(capa.Profile):
    """Test profile: needs sample.thickness_mm, a heater set point, warns without a method."""

    id = "test.needs_thickness"
    name = "needs thickness"

    class Config(capa.ConfigModel):
        heater: str = "heater_sp"

    def check(self, subject):
        findings = []
        if subject.sample.get("thickness_mm") is None:
            findings.append(
                capa.ProfileFinding(
                    capa.Severity.ERROR,
                    "profile.thickness",
                    "set sample.thickness_mm",
                    ("sample", "thickness_mm"),
                )
            )
        ch = subject.channels.get(self.config.heater)
        if ch is None or not ch.writable:
            findings.append(
                capa.ProfileFinding(
                    capa.Severity.ERROR, "profile.heater", "no writable heater", ("profile",)
                )
            )
        elif ch.unit != "degC":
            findings.append(
                capa.ProfileFinding(
                    capa.Severity.ERROR, "profile.unit", "heater not in degC", channel=ch.name
                )
            )
        findings.append(
            capa.ProfileFinding(capa.Severity.WARNING, "profile.note", "remember the lid")
        )
        return findings

    def manifest_fields(self, subject):
        return {"heater": self.config.heater}


class Exploding(capa.Profile):
    """Test profile whose check raises."""

    id = "test.exploding"
    Config = capa.EmptyConfig

    def check(self, subject):
        raise ZeroDivisionError("oops")


@pytest.fixture
def phost():
    host = tc.make_host()
    record = host.register(
        SimpleNamespace(capa_register_profiles=capa.hookimpl(lambda: [NeedsThickness, Exploding])),
        name="profplug",
    )
    assert record.status.value == "loaded", record.reason
    assert host.profiles.ids() == ["test.exploding", "test.needs_thickness"]
    return host


def _write(tmp_path, extra=""):
    tc.write_set(tmp_path)
    exp = tmp_path / "experiment.yaml"
    exp.write_text(exp.read_text() + extra)
    return exp


def codes(report):
    return [(p.severity.value, p.code) for p in report.problems]


def test_profile_contract_is_checked():
    check_profile(NeedsThickness)

    class NoCheck(capa.Profile):
        """Missing check()."""

        id = "test.no_check"
        Config = capa.EmptyConfig

    reasons = check_component(capa.ComponentKind.PROFILE, NoCheck)
    assert any("abstract methods not implemented: check" in r for r in reasons)
    with pytest.raises(AssertionError, match="check"):
        check_profile(NoCheck)


def test_profile_findings_are_located_problems(tmp_path, phost):
    exp = _write(tmp_path, "profile:\n  id: test.needs_thickness\n")
    report = validate_experiment(exp, phost)
    assert ("error", "profile.thickness") in codes(report)
    assert ("warning", "profile.note") in codes(report)
    thick = next(p for p in report.problems if p.code == "profile.thickness")
    assert thick.source.endswith("experiment.yaml")
    assert thick.path == "sample.thickness_mm"
    assert thick.line is not None
    assert not report.ok


def test_channel_findings_point_at_the_hardware_file(tmp_path, phost):
    exp = _write(tmp_path, "profile:\n  id: test.needs_thickness\n  config: {heater: sample_t}\n")
    report = validate_experiment(exp, phost)
    # sample_t is not writable: the heater finding is reported against the experiment
    assert ("error", "profile.heater") in codes(report)
    # and a writable channel in another unit is located at its declaration in rig.toml
    (tmp_path / "rig.toml").write_text(
        (tmp_path / "rig.toml")
        .read_text()
        .replace(
            'name = "heater_sp"\nkind = "temperature"\nunit = "degC"',
            'name = "heater_sp"\nkind = "temperature"\nunit = "K"',
        )
    )
    exp.write_text(exp.read_text().replace("config: {heater: sample_t}", "config: {}"))
    report = validate_experiment(exp, phost)
    unit = next(p for p in report.problems if p.code == "profile.unit")
    assert unit.source.endswith("rig.toml")
    assert unit.path == "channels[1]"


def test_clean_profile_and_manifest_entry(tmp_path, phost):
    exp = _write(tmp_path, "profile:\n  id: test.needs_thickness\n")
    exp.write_text(exp.read_text().replace("  mass_g: 1.5\n", "  mass_g: 1.5\n  thickness_mm: 2\n"))
    report = validate_experiment(exp, phost)
    assert report.ok, report.problems
    assert report.profile is not None
    entry = report.profile.manifest_entry()
    assert entry["id"] == "test.needs_thickness"
    assert entry["dist"] == "<test>"
    assert entry["heater"] == "heater_sp"
    assert entry["warnings"] == ["remember the lid"]


def test_unknown_profile_and_bad_config_and_raising_check(tmp_path, phost):
    exp = _write(tmp_path, "profile:\n  id: test.needs_thicknes\n")
    report = validate_experiment(exp, phost)
    unknown = next(p for p in report.problems if p.code == "plugin.profile_unknown")
    assert "did you mean 'test.needs_thickness'" in unknown.message
    assert unknown.path == "profile.id"

    exp = _write(tmp_path, "profile:\n  id: test.needs_thickness\n  config: {nope: 1}\n")
    report = validate_experiment(exp, phost)
    assert any(p.path.startswith("profile.config") for p in report.problems if p.is_error)

    exp = _write(tmp_path, "profile:\n  id: test.exploding\n")
    report = validate_experiment(exp, phost)
    err = next(p for p in report.problems if p.code == "plugin.error")
    assert "ZeroDivisionError" in err.message


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_capa_profile_validate_exit_codes(tmp_path, phost, monkeypatch, capsys):
    import capa.cli.common

    monkeypatch.setattr(capa.cli.common, "_host", phost)
    exp = _write(tmp_path)
    # no profile named and none given: exit 2 with the installed ids
    code, _, err = run_cli(capsys, "profile", "validate", exp)
    assert code == 2
    assert "names no profile" in err
    assert "test.needs_thickness" in err
    # --profile with an unknown id: exit 2, one line
    code, _, err = run_cli(capsys, "profile", "validate", exp, "--profile", "test.nope")
    assert code == 2
    assert "unknown profile id 'test.nope'" in err
    assert "Traceback" not in err
    # an error finding: exit 2, located
    code, _, err = run_cli(capsys, "profile", "validate", exp, "--profile", "test.needs_thickness")
    assert code == 2
    assert "profile.thickness" in err
    assert "experiment.yaml" in err
    # clean: exit 0 and says how many warnings
    exp.write_text(exp.read_text().replace("  mass_g: 1.5\n", "  mass_g: 1.5\n  thickness_mm: 2\n"))
    code, out, _ = run_cli(capsys, "profile", "validate", exp, "--profile", "test.needs_thickness")
    assert code == 0
    assert "OK:" in out
    assert "1 warning" in out
    code, out, _ = run_cli(capsys, "profile", "list", "--json")
    assert code == 0
    assert "test.needs_thickness" in out
