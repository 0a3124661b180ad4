"""Hard limits on configuration input (issue 14, item 5).

Every case here was found by mutating real files: before these limits each one exited 5
(RecursionError, ValueError, MemoryError, RuntimeError), hung (a FIFO, /dev/zero), took
tens of seconds, or validated and then broke ``capa run`` (an alias bomb, ``.inf``). Each is
now one line naming the file and the field, exit 2, nothing written.
"""

from __future__ import annotations

import os
import threading

import pytest

from capa.cli.main import main
from capa.config.loader import (
    MAX_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    ConfigFileError,
    load_document,
    resolve_path,
)

from . import components as tc

pytestmark = pytest.mark.usefixtures("cli_host")


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def snapshot(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


def problem_of(path):
    with pytest.raises(ConfigFileError) as info:
        load_document(path)
    return info.value.problem


def _bomb(levels: int = 9) -> str:
    """A "billion laughs" under ``custom:``: 9 aliases of 9 aliases ... of 9 strings."""
    lines = ['  l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"  l{i}: &l{i} [{refs}]")
    return "custom:\n" + "\n".join(lines) + "\n"


def _experiment(extra: str = "", **replace: str) -> str:
    text = tc.EXPERIMENT
    for old, new in replace.items():
        text = text.replace(old, new)
    return text + extra


# name, files to (over)write, fragments the single error line must contain
CASES = [
    (
        "TOML nested 1000 deep",
        {"rig.toml": tc.RIG + "deep = " + "[" * 1000 + "]" * 1000 + "\n"},
        ["rig.toml", "file.too_deep", f"nested more than {MAX_DEPTH} levels"],
    ),
    (
        "TOML nested just over the limit",
        {"rig.toml": tc.RIG + "deep = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"},
        ["rig.toml", "file.too_deep", "deep"],
    ),
    (
        "YAML nested 100 deep",
        {"experiment.yaml": _experiment("custom:\n  x: " + "[" * 100 + "]" * 100 + "\n")},
        ["experiment.yaml:12", "file.too_deep"],
    ),
    (
        "YAML integer of 5000 digits",
        {"experiment.yaml": _experiment("custom:\n  n: " + "9" * 5000 + "\n")},
        ["experiment.yaml:12", "file.number_out_of_range", "64 bits"],
    ),
    (
        "YAML integer over 64 bits",
        {"experiment.yaml": _experiment("custom:\n  n: " + str(2**64) + "\n")},
        ["custom.n", "experiment.yaml:12", "file.number_out_of_range"],
    ),
    (
        "TOML integer of 5000 digits",
        {"rig.toml": tc.RIG + "big = " + "9" * 5000 + "\n"},
        ["rig.toml", "file.number_out_of_range"],
    ),
    (
        "shutdown_grace_s: .inf",
        {"experiment.yaml": _experiment("runtime:\n  shutdown_grace_s: .inf\n")},
        ["runtime.shutdown_grace_s", "experiment.yaml:12", "inf is not a usable number"],
    ),
    (
        "shutdown_grace_s: 2**63",
        {"experiment.yaml": _experiment(f"runtime:\n  shutdown_grace_s: {2**63}\n")},
        ["runtime.shutdown_grace_s", "experiment.yaml:12", "less than or equal to"],
    ),
    (
        "shutdown_grace_s: 1e300",
        {"experiment.yaml": _experiment("runtime:\n  shutdown_grace_s: 1.0e+300\n")},
        ["runtime.shutdown_grace_s", "less than or equal to"],
    ),
    (
        "NaN in a step",
        {"soak.method.toml": tc.METHOD.replace("value = 120.0", "value = nan")},
        ["steps[0].value", "soak.method.toml:7", "nan is not a usable number"],
    ),
    (
        "alias bomb under custom",
        {"experiment.yaml": _experiment(_bomb())},
        ["custom", "file.alias_expansion", f"more than {MAX_ALIAS_NODES:,} values"],
    ),
    (
        "recursive alias",
        {"experiment.yaml": _experiment("custom: &c\n  self: *c\n")},
        ["experiment.yaml:11", "file.alias_recursive"],
    ),
    (
        "YAML !!binary value",
        {"experiment.yaml": _experiment("custom:\n  blob: !!binary aGVsbG8=\n")},
        ["custom.blob", "file.unsupported_value", "bytes"],
    ),
    (
        "NUL byte in a referenced path",
        {"experiment.yaml": _experiment(**{"hardware: rig.toml": 'hardware: "rig\\0.toml"'})},
        ["experiment.yaml:1", "hardware", "file.bad_path", "NUL byte"],
    ),
    (
        "~nosuchuser in a referenced path",
        {
            "experiment.yaml": _experiment(
                **{"hardware: rig.toml": "hardware: ~nosuchuser-capa/rig.toml"}
            )
        },
        ["experiment.yaml:1", "hardware", "file.bad_path", "'~nosuchuser-capa' (no such user)"],
    ),
    (
        "referenced file is a symlink loop",
        {
            "experiment.yaml": _experiment(**{"hardware: rig.toml": "hardware: loop1.toml"}),
            "loop1.toml": ("symlink", "loop2.toml"),
            "loop2.toml": ("symlink", "loop1.toml"),
        },
        ["experiment.yaml:1", "hardware", "loop1.toml", "file.symlink_loop"],
    ),
    (
        "referenced file is /dev/zero",
        {
            "experiment.yaml": _experiment(**{"hardware: rig.toml": "hardware: zero.toml"}),
            "zero.toml": ("symlink", "/dev/zero"),
        },
        ["experiment.yaml:1", "hardware", "zero.toml", "file.not_regular", "character device"],
    ),
    (
        "referenced file is a FIFO",
        {
            "experiment.yaml": _experiment(**{"method: soak.method.toml": "method: p.method.toml"}),
            "p.method.toml": ("fifo", None),
        },
        ["experiment.yaml:2", "method", "file.not_regular", "FIFO"],
    ),
    (
        "comment-padded YAML over the size limit",
        {"experiment.yaml": _experiment(("#" + "x" * 79 + "\n") * (MAX_CONFIG_BYTES // 80 + 1))},
        ["experiment.yaml", "file.too_large", f"{MAX_CONFIG_BYTES:,} bytes"],
    ),
]


def _write(root, files):
    for name, content in files.items():
        target = root / name
        if isinstance(content, tuple) and content[0] == "symlink":
            target.unlink(missing_ok=True)
            target.symlink_to(content[1])
        elif isinstance(content, tuple) and content[0] == "fifo":
            os.mkfifo(target)
        else:
            target.write_text(content, encoding="utf-8")


def _validate_in_thread(capsys, *args):
    """``capa validate``, guarded: a regression that blocks (a FIFO) fails, not hangs."""
    box: dict[str, object] = {}

    def target():
        try:
            box["result"] = run(capsys, *args)
        except BaseException as exc:  # handed to the test thread below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "capa validate blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


@pytest.mark.parametrize(("files", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_input_limit_is_one_line_exit_2_nothing_written(
    tmp_path, monkeypatch, capsys, files, fragments
):
    tc.write_set(tmp_path)
    _write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path) if not any(isinstance(v, tuple) for v in files.values()) else None
    code, out, err = _validate_in_thread(capsys, "validate", "experiment.yaml")
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text
    assert "internal error" not in text
    errors = [line for line in err.splitlines() if line.startswith("[error]")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    if before is not None:
        assert snapshot(tmp_path) == before  # nothing written


def test_the_file_given_on_the_command_line_may_be_a_fifo_or_device(tmp_path, capsys):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    code, _, err = _validate_in_thread(capsys, "validate", fifo)
    assert code == 2
    assert "file.not_regular" in err
    assert "FIFO" in err
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    code, _, err = _validate_in_thread(capsys, "validate", zero)
    assert code == 2
    assert "character device" in err


def test_symlink_loop_given_on_the_command_line(tmp_path, capsys):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    code, _, err = run(capsys, "validate", tmp_path / "a.yaml")
    assert code == 2
    assert "file.symlink_loop" in err
    assert "Traceback" not in err


def test_depth_limit_leaves_room_for_real_files(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    value, depth = load_document(ok).data["a"], 0
    while isinstance(value, list):
        value = value[0] if value else None
        depth += 1
    assert depth == MAX_DEPTH - 1  # the top-level table is the first level
    too = tmp_path / "too.yaml"
    too.write_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    assert problem_of(too).code == "file.too_deep"


def test_aliases_that_share_tables_are_fine(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(
        "base: &base {port: sim://, rate_hz: 5}\n"
        "a: *base\n"
        "b: {<<: *base, rate_hz: 10}\n"
        "many: [" + ", ".join(["*base"] * 1000) + "]\n"
    )
    doc = load_document(path)
    assert doc.data["b"] == {"port": "sim://", "rate_hz": 10}
    assert len(doc.data["many"]) == 1000


def test_alias_expansion_just_under_and_over_the_limit(tmp_path):
    # 1 list of 100 strings, aliased n times: each alias adds 101 values.
    table = "t: &t [" + ", ".join(["x"] * 100) + "]\n"
    under = tmp_path / "under.yaml"
    under.write_text(table + "u: [" + ", ".join(["*t"] * (MAX_ALIAS_NODES // 101)) + "]\n")
    assert load_document(under).data["t"][0] == "x"
    over = tmp_path / "over.yaml"
    over.write_text(table + "u: [" + ", ".join(["*t"] * (MAX_ALIAS_NODES // 101 + 2)) + "]\n")
    problem = problem_of(over)
    assert problem.code == "file.alias_expansion"
    assert problem.line == 2
    assert problem.message.startswith("u: ")


def test_recursive_alias_in_a_list(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &x [1, *x]\n")
    problem = problem_of(path)
    assert problem.code == "file.alias_recursive"
    assert problem.line == 1


def test_integers_up_to_64_bits_and_finite_floats_load(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text(f"a = {2**63 - 1}\nb = -{2**63}\nc = 1.5e300\nd = 2024-05-01T10:00:00Z\n")
    data = load_document(path).data
    assert data["a"] == 2**63 - 1
    assert data["c"] == 1.5e300


@pytest.mark.parametrize("literal", ["inf", "-inf", "nan"])
def test_toml_non_finite_floats_name_key_and_line(tmp_path, literal):
    path = tmp_path / "r.toml"
    path.write_text(f'name = "r"\n[devices.params]\nrate = {literal}\n')
    problem = problem_of(path)
    assert problem.code == "file.number_out_of_range"
    assert problem.message.startswith("devices.params.rate: ")
    assert problem.line == 3


def test_resolve_path_refuses_paths_that_name_no_file(tmp_path):
    owner = tmp_path / "experiment.yaml"
    with pytest.raises(ConfigFileError) as info:
        resolve_path("a\0b.toml", owner)
    assert info.value.problem.code == "file.bad_path"
    assert info.value.problem.source == str(owner)
    with pytest.raises(ConfigFileError) as info:
        resolve_path("~nosuchuser-capa/rig.toml", owner)
    assert "no such user" in info.value.problem.message


def test_yaml_nested_far_beyond_the_limit_is_too_deep_not_syntax(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    problem = problem_of(path)
    assert problem.code == "file.too_deep"
    assert problem.line == 1
