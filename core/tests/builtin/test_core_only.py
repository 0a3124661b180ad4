"""Core alone records a run: ``capa.builtin.free_run`` ships with ``capa`` itself.

The design card's own example, ``pip install capa capa-watlow``, must be able to record;
before, every procedure (free run included) lived in capa-procedures. These tests load a
plugin host with core's built-in plugin only — no entry points — and run through the CLI.
"""

from __future__ import annotations

import json

import pytest

import capa
import capa.cli.common
from capa.cli.main import main
from capa.config import providers

RIG = """
name = "core-only"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
rate_hz = 20
[devices.params.signals]
pv = { kind = "sine", unit = "degC", offset = 25.0, amplitude = 1.0, period_s = 2.0 }

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "pv" }
"""


@pytest.fixture
def core_only(monkeypatch, tmp_path):
    host = capa.PluginHost(builtin=True)
    host.load(entry_points=False)
    monkeypatch.setattr(capa.cli.common, "_host", host)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPA_PLUGIN_MODE", raising=False)
    return host


def run_capa(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def write(tmp_path, procedure: str, config: str = "") -> str:
    (tmp_path / "rig.toml").write_text(RIG)
    exp = tmp_path / "experiment.yaml"
    exp.write_text(
        f"hardware: rig.toml\nprocedure:\n  id: {procedure}\n{config}"
        "operator: {id: t}\nsample: {id: S-1}\n"
    )
    return str(exp)


def test_core_registers_free_run_and_nothing_else_registers_it(core_only):
    assert core_only.procedures.ids() == ["capa.builtin.free_run"]
    record = core_only.procedures.record("capa.builtin.free_run")
    assert record.dist == "capa"
    full = capa.PluginHost()
    full.load()  # the workspace: capa-procedures installed next to core
    assert full.procedures.record("capa.builtin.free_run").dist == "capa"
    assert not [r for r in full.rejections if r.id == "capa.builtin.free_run"]


def test_core_alone_records_a_free_run(core_only, tmp_path, capsys):
    exp = write(tmp_path, "capa.builtin.free_run", "  config: {duration_s: 1}\n")
    runs = tmp_path / "runs"
    code, out, err = run_capa(capsys, "run", exp, "--runs-root", runs)
    assert code == 0, out + err
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    bundle = runs / rows["run_id"].strip()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["run_status"] == "completed"
    assert manifest["procedure"]["id"] == "capa.builtin.free_run"
    assert (bundle / "scalars.parquet").stat().st_size > 0


def test_unknown_procedure_names_the_distribution_to_install(core_only, tmp_path, capsys):
    exp = write(tmp_path, "capa.builtin.recipe_runner")
    code, _, err = run_capa(capsys, "validate", exp)
    assert code == 2
    # capa-procedures is installed in this workspace, just not loaded by this host
    assert "it is provided by capa-procedures, which is installed but did not load" in err
    assert "available: capa.builtin.free_run" in err


def test_provider_hint_for_a_distribution_that_is_not_installed(monkeypatch):
    monkeypatch.setitem(
        providers.KNOWN_PROVIDERS, "adapter", {"acme.oven": "capa-acme-not-installed"}
    )
    hint = providers.provider_hint("adapter", "acme.oven")
    assert hint == (
        "; it is provided by capa-acme-not-installed, which is not installed "
        "(pip install capa-acme-not-installed)"
    )
    assert providers.provider_hint("adapter", "acme.unknown") == ""
    assert providers.provider_hint("step", "ramp").startswith("; it is provided by capa-procedures")


def test_sigint_between_validation_and_the_runs_handler_stops_the_run(
    core_only, tmp_path, monkeypatch, capsys
):
    # The last gap before the run's own two-stage handler: the early handler remembers the
    # signal, and the run stops as soon as it starts (a free run would otherwise never end).
    import os
    import signal

    import capa.runtime.signals

    real = capa.runtime.signals.install_sigint_handler

    def late_install(stop, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # lands on the early handler, armed
        return real(stop, **kwargs)

    monkeypatch.setattr(capa.runtime.signals, "install_sigint_handler", late_install)
    exp = write(tmp_path, "capa.builtin.free_run")  # no duration: runs until stopped
    runs = tmp_path / "runs"
    code, out, err = run_capa(capsys, "run", exp, "--runs-root", runs)
    assert code == 1, out + err
    assert "SIGINT received — stopping before the run starts" in err
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert rows["run_status"].strip() == "aborted"
    # The stop is seen while the devices open: the open is cancelled and no bundle is
    # made (nothing was recorded yet), rather than a free run that never ends.
    assert rows["bundle_status"].strip() == "none"
    assert rows["exit_reason"].strip().startswith("operator_stop")
