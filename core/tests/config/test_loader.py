from __future__ import annotations

import os

import pytest

from capa.config.loader import (
    ConfigFileError,
    LoadStack,
    format_loc,
    load_document,
    resolve_path,
)


def error_of(path):
    with pytest.raises(ConfigFileError) as info:
        load_document(path)
    return info.value.problem


def test_yaml_keys_and_list_items_have_line_numbers(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("a: 1\nb:\n  c:\n    - x: 1\n    - x: 2\n      y: 3\n")
    doc = load_document(path)
    assert doc.data == {"a": 1, "b": {"c": [{"x": 1}, {"x": 2, "y": 3}]}}
    assert doc.line_of(("a",)) == 1
    assert doc.line_of(("b", "c", 1, "y")) == 6
    assert doc.line_of(("b", "c", 1, "missing")) == 5  # nearest placed parent


def test_toml_tables_keys_and_arrays_of_tables_have_line_numbers(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(
        'name = "x"\n\n[[devices]]\nname = "a"\n\n[[devices]]\nname = "b"\n'
        'params = { port = "p" }\n\n[devices.params2]\nbaud = 1\n'
        "values = [\n  1,\n  2,\n]\nafter = 3\n"
    )
    doc = load_document(path)
    assert doc.line_of(("name",)) == 1
    assert doc.line_of(("devices", 0, "name")) == 4
    assert doc.line_of(("devices", 1, "name")) == 7
    assert doc.line_of(("devices", 1, "params", "port")) == 8
    assert doc.line_of(("devices", 1, "params2", "baud")) == 11
    assert doc.line_of(("devices", 1, "params2", "after")) == 16


def test_yaml_anchors_shared_twice_keep_their_line_numbers(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("a: &x [1, 2]\nb: *x\n")
    doc = load_document(path)
    assert doc.data == {"a": [1, 2], "b": [1, 2]}
    assert doc.line_of(("b",)) == 2


@pytest.mark.parametrize(
    ("name", "content", "code", "line"),
    [
        ("bad.yaml", "a: [1, 2\nb: 3\n", "file.syntax", 2),
        ("bad.toml", 'name = "x"\nname = "y"\n', "file.syntax", 2),
        ("empty.yaml", "", "file.empty", None),
        ("blank.toml", "  \n\n", "file.empty", None),
        ("comments.yaml", "# nothing\n", "file.empty", None),
        ("list.yaml", "- 1\n- 2\n", "file.not_a_table", 1),
        ("scalar.yaml", "just text\n", "file.not_a_table", 1),
        ("x.json", "{}", "file.unsupported_suffix", None),
    ],
)
def test_unusable_text_files(tmp_path, name, content, code, line):
    path = tmp_path / name
    path.write_text(content)
    problem = error_of(path)
    assert problem.code == code
    assert problem.line == line
    assert problem.source == str(path)


def test_binary_and_non_utf8_files(tmp_path):
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    assert error_of(binary).code == "file.binary"
    latin = tmp_path / "l.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    assert error_of(latin).code == "file.encoding"


def test_missing_directory_and_oversized(tmp_path):
    assert error_of(tmp_path / "nope.yaml").code == "file.not_found"
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert error_of(folder).code == "file.is_directory"
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:  # sparse: 50 MB on paper, nothing on disk
        fh.truncate(50 * 1024 * 1024)
    problem = error_of(big)
    assert problem.code == "file.too_large"
    assert "52,428,800 bytes" in problem.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    assert error_of(path).code == "file.unreadable"


def test_load_stack_reports_the_whole_cycle(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    stack = LoadStack()
    with stack.entering(a), stack.entering(b), pytest.raises(ConfigFileError) as info:  # noqa: SIM117
        with stack.entering(a):  # the third entry closes the cycle
            pass
    assert info.value.problem.code == "file.cycle"
    assert "a.yaml -> b.yaml -> a.yaml" in info.value.problem.message
    with stack.entering(a):  # the stack unwound: no false cycle afterwards
        pass


def test_paths_resolve_relative_to_the_containing_file(tmp_path):
    owner = tmp_path / "sub" / "experiment.yaml"
    assert resolve_path("rig.toml", owner) == (tmp_path / "sub" / "rig.toml").resolve()
    assert resolve_path("../x.toml", owner) == (tmp_path / "x.toml").resolve()
    assert resolve_path(str(tmp_path / "abs.toml"), owner) == tmp_path / "abs.toml"


def test_format_loc():
    assert format_loc(("devices", 1, "params", "port")) == "devices[1].params.port"
    assert format_loc(()) == ""


def test_yaml_duplicate_keys_are_refused_not_silently_merged(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("sample:\n  id: a\n  id: b\n")
    problem = error_of(path)
    assert problem.code == "file.duplicate_key"
    assert problem.line == 3
    assert "sample.id: key appears twice (lines 2 and 3)" in problem.message
