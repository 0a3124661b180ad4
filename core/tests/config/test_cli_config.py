"""The configuration commands end to end, through the CLI's single error boundary."""

from __future__ import annotations

import json

import pytest

from capa.cli.main import main

from . import components as tc

pytestmark = pytest.mark.usefixtures("cli_host")


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def snapshot(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


def _big(path):
    with open(path, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)


# name, files to (over)write in the valid set, command, fragments the output must contain
BAD_INPUT = [
    (
        "malformed yaml",
        {"experiment.yaml": "hardware: rig.toml\nprocedure: {id: x\n"},
        ["validate", "experiment.yaml"],
        ["experiment.yaml:3", "file.syntax", "malformed YAML"],
    ),
    (
        "malformed toml",
        {"rig.toml": 'name = "r"\n[[devices]\n'},
        ["hardware", "validate", "rig.toml"],
        ["rig.toml:2", "file.syntax", "malformed TOML"],
    ),
    (
        "unknown key with did-you-mean",
        {"rig.toml": tc.RIG.replace("kind =", "knd =", 1)},
        ["config", "validate", "rig.toml"],
        ["channels[0].knd", "schema.unknown_key", "did you mean 'kind'?", "rig.toml:15"],
    ),
    (
        "wrong type",
        {"rig.toml": tc.RIG.replace("baudrate = 19200", 'baudrate = "fast"')},
        ["hardware", "validate", "rig.toml"],
        ["devices[0].params.baudrate", "schema.wrong_type", "'fast'", "rig.toml:6"],
    ),
    (
        "missing file",
        {},
        ["validate", "absent.yaml"],
        ["absent.yaml", "file.not_found"],
    ),
    (
        "missing referenced file",
        {"experiment.yaml": tc.EXPERIMENT.replace("rig.toml", "rigs/rig.toml")},
        ["validate", "experiment.yaml"],
        ["experiment.yaml:1", "hardware", "rigs/rig.toml: file not found"],
    ),
    (
        "path cycle",
        {
            "experiment.yaml": tc.EXPERIMENT.replace(
                "method: soak.method.toml", "method: ./experiment.yaml"
            )
        },
        ["validate", "experiment.yaml"],
        ["method", "file.cycle", "experiment.yaml -> experiment.yaml"],
    ),
    (
        "unknown adapter",
        {"rig.toml": tc.RIG.replace('"test.controller"', '"test.controler"')},
        ["config", "validate", "rig.toml"],
        [
            "devices[0].adapter",
            "plugin.adapter_unknown",
            "did you mean 'test.controller'?",
            "available:",
        ],
    ),
    (
        "unknown procedure",
        {"experiment.yaml": tc.EXPERIMENT.replace("test.recipe", "acme.bake")},
        ["validate", "experiment.yaml"],
        [
            "procedure.id",
            "plugin.procedure_unknown",
            "available: capa.builtin.free_run, test.free_run, test.recipe",
        ],
    ),
    (
        "unknown step kind",
        {"soak.method.toml": tc.METHOD.replace('kind = "wait"', 'kind = "pause"')},
        ["method", "validate", "soak.method.toml"],
        ["steps[1].kind", "plugin.step_unknown", "available: hold, wait, watch"],
    ),
    (
        "duplicate names",
        {"rig.toml": tc.RIG.replace('name = "sample_t"', 'name = "heater_pv"')},
        ["validate", "experiment.yaml"],
        ["channels[2].name", "channel.duplicate_name", "rig.toml:29"],
    ),
    (
        "directory instead of a file",
        {"folder.yaml/": None},
        ["config", "validate", "folder.yaml"],
        ["folder.yaml", "file.is_directory"],
    ),
    (
        "empty file",
        {"experiment.yaml": ""},
        ["validate", "experiment.yaml"],
        ["experiment.yaml", "file.empty"],
    ),
    (
        "binary file",
        {"rig.toml": b"\x7fELF\x02\x01\x01\x00\x00\x00"},
        ["hardware", "check", "rig.toml"],
        ["rig.toml", "file.binary"],
    ),
    (
        "50 MB file",
        {"rig.toml": _big},
        ["config", "validate", "rig.toml"],
        ["rig.toml", "file.too_large", "52,428,800 bytes"],
    ),
    (
        "method with an unsupported suffix",
        {"soak.toml": tc.METHOD},
        ["method", "validate", "soak.toml"],
        ["soak.toml", "file.unsupported_suffix"],
    ),
    (
        "step writes a read-only channel",
        {"soak.method.toml": tc.METHOD.replace('target = "heater_sp"', 'target = "heater_pv"')},
        ["validate", "experiment.yaml"],
        ["steps[0].target", "step.target_not_writable", "soak.method.toml:6"],
    ),
    (
        "live handshake fails",
        {
            "rig.toml": tc.RIG.replace(
                "baudrate = 19200 }", "baudrate = 19200, fail_handshake = true }"
            )
        },
        ["validate", "--strict", "experiment.yaml"],
        ["devices[0]", "live.handshake_failed", "no answer on /dev/ttyT0"],
    ),
    (
        "a hardware file given to capa validate",
        {},
        ["validate", "rig.toml"],
        ["file.wrong_kind", "not an experiment", "capa hardware validate"],
    ),
    (
        "hardware new refuses to overwrite",
        {},
        ["hardware", "new", "rig.toml"],
        ["rig.toml: already exists; refusing to overwrite"],
    ),
    (
        "hardware new with a non-toml name",
        {},
        ["hardware", "new", "rig.yaml"],
        ["rig.yaml: hardware files are TOML"],
    ),
    (
        "discover an unknown adapter",
        {},
        ["devices", "discover", "--adapter", "acme.nothing"],
        ["unknown adapter id 'acme.nothing'", "available: capa.sim.signals, test.controller"],
    ),
    (
        "schema of an unknown component",
        {},
        ["config", "schema", "step:nope"],
        ["unknown step id 'nope'", "available: hold, wait, watch"],
    ),
]


@pytest.mark.parametrize(
    ("files", "command", "fragments"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path, monkeypatch, capsys, files, command, fragments
):
    tc.write_set(tmp_path)
    for name, content in files.items():
        target = tmp_path / name
        if name.endswith("/"):
            target.mkdir()
        elif callable(content):
            content(target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, out, err = run(capsys, *command)
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text
    assert "internal error" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert snapshot(tmp_path) == before  # nothing written


def test_validate_prints_the_rig_summary(tmp_path, capsys):
    exp = tc.write_set(tmp_path)
    code, out, err = run(capsys, "validate", exp)
    assert code == 0, err
    assert out.splitlines() == [
        f"OK: {exp}",
        "hardware: bench (2 devices)",
        "channels: 3",
        "procedure: test.recipe",
        "method: soak (3 steps)",
    ]


def test_config_validate_lines_and_summary(tmp_path, capsys):
    tc.write_set(tmp_path)
    rig = tmp_path / "rig.toml"
    rig.write_text(
        tc.RIG.replace(
            'unit = "degC"\nsource = { device = "heater", field = "process_value" }',
            'unit = "bar"\nsource = { device = "heater", field = "process_value" }',
        )
    )
    code, out, _ = run(capsys, "config", "validate", rig)
    assert code == 0  # warnings do not change the exit code
    lines = out.splitlines()
    assert lines[0].startswith("[warning] channels[0].unit :: channel.unit_mismatch: ")
    assert lines[0].endswith(f"({rig}:18)")
    assert lines[-1] == f"{rig}: 0 errors, 1 warning, 0 info"


def test_method_validate_lists_steps(tmp_path, capsys):
    tc.write_set(tmp_path)
    code, out, _ = run(
        capsys,
        "method",
        "validate",
        tmp_path / "soak.method.toml",
        "--hardware",
        tmp_path / "rig.toml",
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        "[00] hold   target=heater_sp value=120.0 duration_s=5.0",
        "[01] wait   duration_s=1.0",
        "[02] watch  target=sample_t above=300.0",
    ]


def test_hardware_new_writes_a_valid_file(tmp_path, capsys):
    path = tmp_path / "lab rig.toml"
    code, out, _ = run(capsys, "hardware", "new", path, "--name", 'Lab "A"')
    assert code == 0
    assert out.strip() == f"wrote {path}"
    assert [p.name for p in tmp_path.iterdir()] == ["lab rig.toml"]  # no temp file left
    code, out, _ = run(capsys, "hardware", "validate", path)
    assert code == 0, out
    import tomllib

    assert tomllib.loads(path.read_text())["name"] == 'Lab "A"'
    code, _, _ = run(capsys, "hardware", "new", tmp_path / "default.toml")
    assert code == 0
    assert tomllib.loads((tmp_path / "default.toml").read_text())["name"] == "default"


def test_hardware_check_handshakes(tmp_path, capsys):
    tc.write_set(tmp_path)
    tc.HANDSHAKES.clear()
    code, out, _ = run(capsys, "hardware", "check", tmp_path / "rig.toml")
    assert code == 0
    assert tc.HANDSHAKES == ["/dev/ttyT0"]
    assert "live.handshake_ok: device 'heater': controller at /dev/ttyT0" in out


def test_discover_groups_by_adapter_and_excludes_cameras_for_devices(capsys):
    code, out, _ = run(capsys, "hardware", "discover")
    assert code == 0
    assert "test.camera\n  camera:0  test camera" in out
    assert "test.thermo\n  (discovery failed: OSError: bus not reachable)" in out
    assert "capa.sim.signals\n  (no devices found)" in out
    code, out, _ = run(capsys, "devices", "discover", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["adapter"] for r in rows] == ["capa.sim.signals", "test.controller", "test.thermo"]
    assert rows[1]["devices"] == [
        {"resource_id": "serial:/dev/ttyTEST0", "description": "test controller", "params": {}}
    ]
    code, out, _ = run(capsys, "devices", "discover", "--adapter", "test.controller")
    assert code == 0
    assert out.splitlines() == ["test.controller", "  serial:/dev/ttyTEST0  test controller"]


def test_schema_documents_every_key(capsys):
    code, out, _ = run(capsys, "config", "schema", "--json")
    assert code == 0
    doc = json.loads(out)
    assert sorted(doc) == ["experiment", "hardware", "method"]
    hardware = {row["key"]: row for row in doc["hardware"]}
    assert hardware["devices[].on_failure"]["default"] == "'abort'"
    assert (
        hardware["channels[].calibration(kind=piecewise_linear).extrapolate"]["default"] == "False"
    )
    assert hardware["channels[].keep_raw"]["description"] == "Also record the uncalibrated value."
    experiment = {row["key"]: row for row in doc["experiment"]}
    assert experiment["runtime.shutdown_grace_s"]["default"] == "5.0"
    assert "hardware.name" not in experiment  # documented under `hardware`
    assert all(row["description"] for rows in doc.values() for row in rows)
    code, out, _ = run(capsys, "config", "schema", "adapter:test.controller")
    assert code == 0
    assert "baudrate" in out
    assert "9600" in out


def test_the_commented_example_in_a_new_hardware_file_is_valid_too(tmp_path, capsys):
    path = tmp_path / "rig.toml"
    assert run(capsys, "hardware", "new", path)[0] == 0
    lines = path.read_text().splitlines()
    example = [line.removeprefix("#").removeprefix(" ") for line in lines[3:]]
    path.write_text("\n".join([*lines[:3], *example]) + "\n")
    code, out, _ = run(capsys, "hardware", "validate", path)
    assert code == 0, out
    assert out.strip() == f"{path}: 0 errors, 0 warnings, 0 info"
