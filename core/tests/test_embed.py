"""`capa.embed`: the entry points an embedding application (the console) relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

import capa.embed

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def test_validate_plan_and_problem_lines(tmp_path):
    host = capa.embed.load_host()
    if "capa.builtin.free_run" not in host.procedures:
        pytest.skip("capa.builtin.free_run is not installed (capa-procedures)")
    good = tmp_path / "good.yaml"
    good.write_text(
        f"hardware: {DEMO / 'signals_rig.toml'}\nprocedure: {{id: capa.builtin.free_run}}\n"
        "operator: {id: t}\nsample: {id: s}\n"
    )
    report = capa.embed.validate_experiment(good, host)
    assert report.ok, [capa.embed.problem_line(p) for p in report.problems]
    plan = capa.embed.plan_from_report(report, host)
    assert [c.name for c in plan.channels][:2] == ["furnace_sp", "furnace_t"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("hardware:", "hardwar:"))
    report = capa.embed.validate_experiment(bad, host)
    assert not report.ok
    lines = [capa.embed.problem_line(p) for p in report.problems if p.is_error]
    assert any("bad.yaml" in line and line.startswith("[error]") for line in lines), lines
    with pytest.raises(capa.ConfigError):
        capa.embed.plan_from_report(report, host)


def test_runs_root_catalog_and_blocked_plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPA_RUNS_ROOT", str(tmp_path / "env-root"))
    assert capa.embed.resolve_runs_root(None) == tmp_path / "env-root"
    assert capa.embed.resolve_runs_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(capa.BundleError):
        capa.embed.catalog(tmp_path / "nothing-here")
    assert capa.embed.blocked_plugins(capa.embed.load_host()) == []  # dev mode
    assert capa.embed.is_production() is False
