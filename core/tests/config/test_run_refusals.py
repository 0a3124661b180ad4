"""`capa run` refusals versus configuration errors (seed 001; issue 18, section 4).

A file that does not parse or does not match its schema is a configuration error: exit 2.
A well-formed experiment that this rig cannot run — an adapter that is not installed or
cannot be built from its params, two devices on one resource, a procedure that refuses
the experiment — is a preflight refusal: exit 1, ``run_id: preflight-refused``. Neither
writes anything into the runs root.
"""

from __future__ import annotations

import pytest

from capa.cli.main import main

from . import components as tc

pytestmark = pytest.mark.usefixtures("cli_host")

THERMO_TWICE = """
[[devices]]
name = "probe2"
adapter = "test.thermo"

[devices.params]
channel = 2
"""


def run_capa(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def summary(out: str) -> dict[str, str]:
    rows = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in rows}


def _run(tmp_path, monkeypatch, capsys, rig=None, experiment=None):
    exp = tc.write_set(tmp_path)
    if rig is not None:
        (tmp_path / "rig.toml").write_text(rig)
    if experiment is not None:
        exp.write_text(experiment)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the pre-run log goes there
    runs = tmp_path / "runs"
    code, out, err = run_capa(capsys, "run", exp, "--runs-root", runs)
    assert not runs.exists() or not any(runs.iterdir()), "a refused run wrote into the runs root"
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize(
    ("rig", "kind", "says"),
    [
        (
            tc.RIG.replace('adapter = "test.thermo"', 'adapter = "test.thermometer"'),
            "adapter_materialization",
            "unknown adapter 'test.thermometer'",
        ),
        (
            tc.RIG.replace("baudrate = 19200", 'baudrate = "fast"'),
            "adapter_materialization",
            "devices[0].params.baudrate",
        ),
        (
            tc.RIG.replace("channel = 2", "channel = 2\nwires = 4"),
            "adapter_materialization",
            "devices[1].params.wires",
        ),
        (
            tc.RIG.replace("[[channels]]", THERMO_TWICE + "\n[[channels]]", 1),
            "resource_conflict",
            "'thermo-ch2' is used by devices 'probe' and 'probe2'",
        ),
    ],
    ids=["unknown adapter", "bad params", "unknown param", "resource conflict"],
)
def test_preflight_refusals_exit_1_with_the_seed_run_id(
    tmp_path, monkeypatch, capsys, rig, kind, says
):
    code, out, err = _run(tmp_path, monkeypatch, capsys, rig=rig)
    assert code == 1, out + err
    s = summary(out)
    assert s["run_id"] == "preflight-refused"
    assert s["run_status"] == "aborted"
    assert s["exit_reason"].startswith(f"{kind}: ")
    assert says in s["exit_reason"]
    assert f"capa: refused: {tmp_path / 'rig.toml'}" in err


def test_recipe_without_method_is_refused_with_the_free_run_hint(tmp_path, monkeypatch, capsys):
    experiment = tc.EXPERIMENT.replace("method: soak.method.toml\n", "")
    code, out, _ = _run(tmp_path, monkeypatch, capsys, experiment=experiment)
    assert code == 1
    reason = summary(out)["exit_reason"]
    assert reason.startswith("preflight: method: test.recipe needs a method")
    assert "use capa.builtin.free_run" in reason


@pytest.mark.parametrize(
    ("rig", "experiment", "says"),
    [
        (None, tc.EXPERIMENT + "colour: blue\n", "colour"),
        (tc.RIG.replace('name = "bench"', "name = 7"), None, "name"),
        (  # a schema error wins over an adapter problem in the same run
            tc.RIG.replace('name = "bench"', "name = 7").replace(
                'adapter = "test.thermo"', 'adapter = "test.nope"'
            ),
            None,
            "name",
        ),
    ],
    ids=["unknown experiment key", "hardware schema", "schema and adapter"],
)
def test_configuration_errors_stay_exit_2(tmp_path, monkeypatch, capsys, rig, experiment, says):
    code, out, err = _run(tmp_path, monkeypatch, capsys, rig=rig, experiment=experiment)
    assert code == 2, out + err
    assert "run_id" not in out
    assert says in err
    assert err.startswith("capa: error: ")


def test_validate_still_reports_every_refusal_as_exit_2(tmp_path, capsys):
    exp = tc.write_set(tmp_path)
    (tmp_path / "rig.toml").write_text(tc.RIG.replace("baudrate = 19200", 'baudrate = "fast"'))
    code, _, err = run_capa(capsys, "validate", exp)
    assert code == 2  # seed 001: `capa validate` is 0 or 2, whatever the error
    assert "devices[0].params.baudrate" in err


def test_ctrl_c_before_the_run_starts_is_an_operator_stop(tmp_path, monkeypatch, capsys):
    # Found by bench/fuzz_configs.py: SIGINT while plugins load / files validate exited 130
    # ("capa: aborted"); seed 001 reserves 130 for a second Ctrl-C.
    import capa.config.validate

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(capa.config.validate, "validate_experiment", interrupted)
    code, out, _ = _run(tmp_path, monkeypatch, capsys)
    assert code == 1
    s = summary(out)
    assert s["run_id"] == "preflight-refused"
    assert s["run_status"] == "aborted"
    assert s["exit_reason"].startswith("operator_stop: interrupted before the run started")


def test_a_real_sigint_during_validation_stops_before_the_run(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import capa.config.validate

    real = capa.config.validate.validate_experiment

    def interrupted_midway(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread: this one
        return real(*args, **kwargs)

    monkeypatch.setattr(capa.config.validate, "validate_experiment", interrupted_midway)
    before = signal.getsignal(signal.SIGINT)
    code, out, err = _run(tmp_path, monkeypatch, capsys)
    assert code == 1, out + err
    assert summary(out)["exit_reason"].startswith("operator_stop: interrupted before")
    assert "SIGINT received — stopping before the run starts" in err
    # main() gave SIGINT back: pytest's own handling is in place again
    assert signal.getsignal(signal.SIGINT) is before
