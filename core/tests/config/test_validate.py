from __future__ import annotations

from types import SimpleNamespace

import pytest

import capa
from capa.config.validate import (
    FileKind,
    detect_kind,
    validate_experiment,
    validate_file,
    validate_hardware,
    validate_method,
)
from capa.problems import Severity

from . import components as tc

DEVICE_T = """
[[devices]]
name = "{name}"
adapter = "test.controller"
params = {{ port = "{port}", baudrate = {baud} }}
"""


def codes(report):
    return [p.code for p in report.problems]


def errors(report):
    return [p for p in report.problems if p.severity is Severity.ERROR]


def test_valid_set_resolves_everything(tmp_path, host):
    report = validate_experiment(tc.write_set(tmp_path), host)
    assert report.ok, report.problems
    assert report.problems == []
    assert report.experiment.sample.mass_g == 1.5
    hw = report.hardware
    assert sorted(hw.devices) == ["heater", "probe"]
    assert hw.devices["heater"].params.baudrate == 19200
    assert hw.devices["heater"].resource_id == "serial:/dev/ttyT0"
    assert hw.channel_writable("heater_sp")
    assert not hw.channel_writable("heater_pv")
    assert [s.kind for s in report.method.steps] == ["hold", "wait", "watch"]
    assert report.procedure_config == capa.EmptyConfig()


def test_unknown_keys_everywhere_get_did_you_mean_and_lines(tmp_path, host):
    tc.write_set(tmp_path)
    exp = tmp_path / "experiment.yaml"
    exp.write_text(tc.EXPERIMENT.replace("  mass_g: 1.5", "  mas_g: 1.5"))
    rig = tmp_path / "rig.toml"
    rig.write_text(tc.RIG.replace("baudrate = 19200", "baudrat = 19200"))
    report = validate_experiment(exp, host)
    assert [(p.source, p.path, p.line) for p in report.problems] == [
        (str(exp), "sample.mas_g", 9),
        (str(rig), "devices[0].params.baudrat", 6),
    ]
    assert "did you mean 'mass_g'?" in report.problems[0].message
    exp.write_text(tc.EXPERIMENT)
    report = validate_experiment(exp, host)
    (problem,) = report.problems
    assert problem.code == "schema.unknown_key"
    assert problem.path == "devices[0].params.baudrat"
    assert problem.source == str(rig)
    assert problem.line == 6
    assert "did you mean 'baudrate'?" in problem.message


def test_every_schema_problem_is_reported_at_once(tmp_path, host):
    rig = tmp_path / "rig.toml"
    rig.write_text(
        'name = "r"\n[[devices]]\nname = "a"\nadapter = "test.controller"\n'
        'params = { port = 5, baudrate = "fast" }\n'
        '[[devices]]\nname = "b"\nadapter = "test.nothing"\n'
        '[[channels]]\nname = "c"\nunit = "V"\nsource = { device = "a" }\n'
    )
    report = validate_hardware(rig, host)
    found = {(p.path, p.code) for p in report.problems}
    assert found == {
        ("devices[0].params.port", "schema.wrong_type"),
        ("devices[0].params.baudrate", "schema.wrong_type"),
        ("devices[1].adapter", "plugin.adapter_unknown"),
        ("channels[0].kind", "schema.missing_key"),
        ("channels[0].source.field", "schema.missing_key"),
    }
    unknown = next(p for p in report.problems if p.code == "plugin.adapter_unknown")
    assert "available: capa.sim.signals, test.camera, test.controller, test.thermo" in (
        unknown.message
    )


@pytest.mark.parametrize(
    ("old", "new", "code", "path"),
    [
        (
            'device = "probe"',
            'device = "prob"',
            "channel.device_unknown",
            "channels[2].source.device",
        ),
        (
            'field = "temperature"',
            'field = "temp"',
            "channel.field_unknown",
            "channels[2].source.field",
        ),
        ('name = "heater_sp"', 'name = "heater_pv"', "channel.duplicate_name", "channels[1].name"),
        ('name = "probe"', 'name = "heater"', "device.duplicate_name", "devices[1].name"),
    ],
)
def test_hardware_reference_problems(tmp_path, host, old, new, code, path):
    rig = tmp_path / "rig.toml"
    rig.write_text(tc.RIG.replace(old, new, 1))
    report = validate_hardware(rig, host)
    assert [(p.code, p.path) for p in errors(report)] == [(code, path)]
    assert errors(report)[0].line is not None


def test_field_unknown_lists_the_fields_and_suggests(tmp_path, host):
    rig = tmp_path / "rig.toml"
    rig.write_text(tc.RIG.replace('field = "setpoint"', 'field = "setpont"'))
    (problem,) = validate_hardware(rig, host).problems
    assert "did you mean 'setpoint'?" in problem.message
    assert "fields: process_value, setpoint" in problem.message


def test_units_differing_from_the_field_warn_or_convert(tmp_path, host):
    rig = tmp_path / "rig.toml"
    text = tc.RIG.replace('unit = "K"', 'unit = "degC"')  # thermo reports K: convertible
    text = text.replace(
        'unit = "degC"\nsource = { device = "heater", field = "process_value" }',
        'unit = "bar"\nsource = { device = "heater", field = "process_value" }',
    )
    rig.write_text(text)
    report = validate_hardware(rig, host)
    assert report.ok
    assert [(p.severity, p.code, p.path) for p in report.problems] == [
        (Severity.WARNING, "channel.unit_mismatch", "channels[0].unit"),
        (Severity.INFO, "channel.unit_converted", "channels[2].unit"),
    ]


def test_resource_conflict_on_one_port_with_two_baud_rates(tmp_path, host):
    rig = tmp_path / "rig.toml"
    extra = DEVICE_T.format(name="second", port="/dev/ttyT0", baud=9600)
    rig.write_text(tc.RIG.replace("[[channels]]", extra + "\n[[channels]]", 1))
    report = validate_hardware(rig, host)
    (problem,) = report.problems
    assert problem.code == "resource.conflict"
    assert problem.path == "devices[2].params.baudrate"
    assert "baudrate=9600" in problem.message
    assert "baudrate=19200" in problem.message
    # same port and the same settings: a legal RS-485 multidrop, no problem
    rig.write_text(
        tc.RIG.replace(
            "[[channels]]",
            DEVICE_T.format(name="second", port="/dev/ttyT0", baud=19200) + "\n[[channels]]",
            1,
        )
    )
    assert validate_hardware(rig, host).problems == []


def test_claims_and_cameras_cannot_be_shared(tmp_path, host):
    rig = tmp_path / "rig.toml"
    rig.write_text(
        'name = "r"\n'
        '[[devices]]\nname = "t1"\nadapter = "test.thermo"\nparams = { channel = 1 }\n'
        '[[devices]]\nname = "t2"\nadapter = "test.thermo"\nparams = { channel = 1 }\n'
        '[[devices]]\nname = "cam1"\nadapter = "test.camera"\n'
        '[[devices]]\nname = "cam2"\nadapter = "test.camera"\n'
    )
    report = validate_hardware(rig, host)
    assert sorted((p.code, p.path) for p in report.problems) == [
        ("resource.claim_conflict", "devices[1]"),
        ("resource.conflict", "devices[3]"),
    ]


def test_live_handshakes_report_failures(tmp_path, host):
    rig = tmp_path / "rig.toml"
    rig.write_text(
        tc.RIG.replace("baudrate = 19200 }", "baudrate = 19200, fail_handshake = true }")
    )
    tc.HANDSHAKES.clear()
    assert validate_hardware(rig, host).ok  # without live, no device is touched
    assert tc.HANDSHAKES == []
    report = validate_hardware(rig, host, live=True)
    assert tc.HANDSHAKES == ["/dev/ttyT0"]
    assert [(p.code, p.path) for p in errors(report)] == [("live.handshake_failed", "devices[0]")]
    assert "no answer on /dev/ttyT0" in errors(report)[0].message


@pytest.mark.parametrize(
    ("old", "new", "code", "path"),
    [
        ('target = "heater_sp"', 'target = "heater_spp"', "step.target_unknown", "steps[0].target"),
        (
            'target = "heater_sp"',
            'target = "heater_pv"',
            "step.target_not_writable",
            "steps[0].target",
        ),
        ('target = "sample_t"', 'target = "nowhere"', "step.target_unknown", "steps[2].target"),
    ],
)
def test_step_target_problems(tmp_path, host, old, new, code, path):
    exp = tc.write_set(tmp_path)
    (tmp_path / "soak.method.toml").write_text(tc.METHOD.replace(old, new))
    report = validate_experiment(exp, host)
    assert [(p.code, p.path) for p in report.problems] == [(code, path)]
    assert report.problems[0].source == str(tmp_path / "soak.method.toml")
    assert report.problems[0].line is not None


def test_writing_a_channel_whose_calibration_has_no_inverse_is_refused(tmp_path, host):
    exp = tc.write_set(tmp_path)
    rig = tmp_path / "rig.toml"
    rig.write_text(
        tc.RIG.replace(
            '{ kind = "linear", slope = 1.0, intercept = -0.5 }',
            '{ kind = "polynomial", coefficients = [0.0, 1.0, 0.01] }',
        )
    )
    report = validate_experiment(exp, host)
    assert [(p.code, p.path) for p in report.problems] == [
        ("step.target_not_invertible", "steps[0].target")
    ]


def test_method_steps_are_validated_by_their_kind(tmp_path, host):
    path = tmp_path / "m.method.toml"
    path.write_text(
        'name = "m"\n[[steps]]\nkind = "hold"\ntarget = "x"\n'
        '[[steps]]\nkind = "hodl"\n[[steps]]\nduration_s = 1\n'
        '[[steps]]\nkind = "wait"\nduration_s = "long"\nnotes = "ok"\n'
    )
    report = validate_method(path, host)
    assert [(p.code, p.path, p.line) for p in report.problems] == [
        ("schema.missing_key", "steps[0].value", 2),
        ("plugin.step_unknown", "steps[1].kind", 6),
        ("schema.missing_key", "steps[2].kind", 7),
        ("schema.wrong_type", "steps[3].duration_s", 11),
    ]
    assert "did you mean 'hold'?" in report.problems[1].message
    assert "available: hold, wait, watch" in report.problems[1].message


def test_method_suffix_is_required(tmp_path, host):
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\n')
    report = validate_method(path, host)
    assert codes(report) == ["file.unsupported_suffix"]


def test_procedure_and_sink_sections(tmp_path, host):
    tc.write_set(tmp_path)
    exp = tmp_path / "experiment.yaml"
    exp.write_text(
        tc.EXPERIMENT.replace("  id: test.recipe", "  id: test.free_run\n  config: {duration_s: x}")
        + "sinks:\n  - id: test.mirror\n    config: {url: 'x', urll: 'y'}\n  - id: test.miror\n"
    )
    report = validate_experiment(exp, host)
    assert [(p.code, p.path) for p in report.problems] == [
        ("schema.wrong_type", "procedure.config.duration_s"),
        ("procedure.method_unused", "method"),
        ("schema.unknown_key", "sinks[0].config.urll"),
        ("plugin.sink_unknown", "sinks[1].id"),
    ]
    assert report.problems[1].severity is Severity.WARNING
    assert "did you mean 'test.mirror'?" in report.problems[3].message


def test_procedure_needs_its_method_and_version(tmp_path, host):
    tc.write_set(tmp_path)
    exp = tmp_path / "experiment.yaml"
    exp.write_text(
        tc.EXPERIMENT.replace("method: soak.method.toml\n", "").replace(
            "  id: test.recipe", "  id: test.recipe\n  version: '>=2'"
        )
    )
    report = validate_experiment(exp, host)
    assert [(p.code, p.path) for p in report.problems] == [
        ("procedure.version_mismatch", "procedure.version"),
        ("procedure.method_required", "method"),
    ]
    exp.write_text(
        tc.EXPERIMENT.replace("  id: test.recipe", "  id: test.recipe\n  version: '>>2'")
    )
    assert codes(validate_experiment(exp, host)) == ["schema.invalid_value"]


def test_unknown_procedure_lists_what_is_available(tmp_path, host):
    exp = tc.write_set(tmp_path)
    exp.write_text(tc.EXPERIMENT.replace("test.recipe", "test.recipie"))
    (problem,) = validate_experiment(exp, host).problems
    assert problem.code == "plugin.procedure_unknown"
    assert "did you mean 'test.recipe'?" in problem.message
    assert "available: capa.builtin.free_run, test.free_run, test.recipe" in problem.message


def test_inline_hardware_and_method(tmp_path, host):
    exp = tmp_path / "inline.yaml"
    exp.write_text(
        "hardware:\n  name: r\n  devices:\n    - name: h\n      adapter: test.controller\n"
        "      params: {port: p}\n  channels:\n    - {name: sp, kind: t, unit: degC,"
        " source: {device: h, field: setpoint}}\n"
        "method:\n  name: m\n  steps:\n    - {kind: hold, target: spp, value: 1}\n"
        "procedure: {id: test.recipe}\noperator: {id: a}\nsample: {id: s}\n"
    )
    report = validate_experiment(exp, host)
    (problem,) = report.problems
    assert (problem.code, problem.path, problem.line) == (
        "step.target_unknown",
        "method.steps[0].target",
        12,
    )
    assert problem.source == str(exp)


def test_missing_and_cyclic_references(tmp_path, host):
    exp = tc.write_set(tmp_path)
    exp.write_text(tc.EXPERIMENT.replace("hardware: rig.toml", "hardware: nope/rig.toml"))
    (problem,) = validate_experiment(exp, host).problems
    assert (problem.code, problem.path, problem.source) == ("file.not_found", "hardware", str(exp))
    exp.write_text(tc.EXPERIMENT.replace("hardware: rig.toml", "hardware: experiment.yaml"))
    (problem,) = validate_experiment(exp, host).problems
    assert problem.code == "file.cycle"
    assert "experiment.yaml -> experiment.yaml" in problem.message
    exp.write_text(tc.EXPERIMENT.replace("hardware: rig.toml", "hardware: ."))
    assert codes(validate_experiment(exp, host)) == ["file.is_directory"]
    (tmp_path / "rig.toml").write_text("name = \n")
    exp.write_text(tc.EXPERIMENT)
    (problem,) = validate_experiment(exp, host).problems
    assert (problem.code, problem.source, problem.line) == (
        "file.syntax",
        str(tmp_path / "rig.toml"),
        1,
    )


def test_validate_file_detects_the_kind(tmp_path, host):
    exp = tc.write_set(tmp_path)
    assert detect_kind(tmp_path / "x.method.yaml") is FileKind.METHOD
    assert validate_file(exp, host).kind is FileKind.EXPERIMENT
    assert validate_file(tmp_path / "rig.toml", host).kind is FileKind.HARDWARE
    assert validate_file(tmp_path / "soak.method.toml", host).kind is FileKind.METHOD
    assert validate_file(tmp_path / "soak.method.toml", host).ok


def test_broken_plugin_code_becomes_a_problem(tmp_path):
    class Broken(capa.Adapter):
        """Raises from fields()."""

        id = "test.broken"

        class Params(capa.ConfigModel):
            pass

        @classmethod
        def resource_id(cls, params):
            return "x"

        @classmethod
        def fields(cls, params):
            raise RuntimeError("firmware table missing")

        async def open(self):
            pass

        async def close(self):
            pass

        async def read(self):
            return []

        async def command(self, command):
            return capa.CommandResult(accepted=False)

    host = tc.make_host()
    host.register(
        SimpleNamespace(capa_register_adapters=capa.hookimpl(lambda: [Broken])), name="broken"
    )
    rig = tmp_path / "rig.toml"
    rig.write_text('name = "r"\n[[devices]]\nname = "b"\nadapter = "test.broken"\n')
    (problem,) = validate_hardware(rig, host).problems
    assert problem.code == "plugin.error"
    assert "firmware table missing" in problem.message


def test_load_experiment_raises_with_every_problem(tmp_path, host):
    from capa.config.validate import ConfigInvalid, load_experiment

    exp = tc.write_set(tmp_path)
    assert load_experiment(exp, host).ok
    (tmp_path / "soak.method.toml").write_text(
        tc.METHOD.replace('"heater_sp"', '"nope"').replace('"sample_t"', '"nada"')
    )
    with pytest.raises(ConfigInvalid) as info:
        load_experiment(exp, host)
    assert info.value.exit_code == 2
    assert len(info.value.report.problems) == 2
    assert str(info.value).startswith(f"{tmp_path / 'soak.method.toml'}:6: steps[0].target: ")
    assert str(info.value).endswith("(and 1 more problem(s))")


def test_channels_in_nested_step_fields_are_located(tmp_path):
    class Until(capa.Step):
        """Wait until a condition holds."""

        kind = "until"

        class Config(capa.StepConfig):
            end_condition: dict[str, object]

        def channels(self):
            return (self.config.end_condition["channel"],)

        async def execute(self, ctx):
            pass

    host = tc.make_host()
    host.register(SimpleNamespace(capa_register_steps=capa.hookimpl(lambda: [Until])), name="u")
    tc.write_set(tmp_path)
    method = tmp_path / "soak.method.toml"
    method.write_text(
        tc.METHOD
        + '\n[[steps]]\nkind = "until"\nend_condition = { channel = "sample_tt", op = ">" }\n'
    )
    report = validate_method(method, host, hardware=tmp_path / "rig.toml")
    (problem,) = report.problems
    assert (problem.code, problem.path) == ("step.target_unknown", "steps[3].end_condition.channel")
    assert "did you mean 'sample_t'?" in problem.message


def test_a_method_without_its_suffix_is_still_recognised_by_content(tmp_path, host):
    path = tmp_path / "plan.toml"
    path.write_text(tc.METHOD)
    report = validate_file(path, host)
    assert report.kind is FileKind.METHOD
    assert report.ok


def test_a_handshake_that_blocks_times_out_without_stalling(tmp_path, monkeypatch):
    import threading

    import capa.config.check_hardware as check_hardware

    release = threading.Event()

    class Stuck(tc.Controller):
        """Its driver blocks inside handshake (a blocking serial read)."""

        id = "test.stuck"

        @classmethod
        async def handshake(cls, params):
            release.wait(30)  # blocking on purpose, as a pyserial read would
            return capa.HandshakeResult(ok=True)

    class Exits(tc.Controller):
        """Calls sys.exit inside handshake."""

        id = "test.exits"

        @classmethod
        async def handshake(cls, params):
            raise SystemExit(7)

    host = tc.make_host()
    host.register(
        SimpleNamespace(capa_register_adapters=capa.hookimpl(lambda: [Stuck, Exits])), name="s"
    )
    monkeypatch.setattr(check_hardware, "HANDSHAKE_TIMEOUT_S", 0.2)
    rig = tmp_path / "rig.toml"
    rig.write_text(
        'name = "r"\n[[devices]]\nname = "s"\nadapter = "test.stuck"\nparams = { port = "a" }\n'
        '[[devices]]\nname = "e"\nadapter = "test.exits"\nparams = { port = "b" }\n'
    )
    try:
        report = validate_hardware(rig, host, live=True)
    finally:
        release.set()
    assert [(p.code, p.path) for p in report.problems] == [
        ("live.handshake_timeout", "devices[0]"),
        ("live.handshake_failed", "devices[1]"),
    ]
    assert "SystemExit: 7" in report.problems[1].message
    for thread in threading.enumerate():
        if thread.name.startswith("capa:"):
            thread.join(5)
            assert not thread.is_alive()
