"""Property: no mutation of a valid configuration makes a command raise past the CLI.

Whatever the files contain, every configuration command exits 0 (still valid) or 2
(problems reported), prints no traceback and reports no internal error.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capa.cli.main import main

from . import components as tc

pytestmark = pytest.mark.usefixtures("cli_host")

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run: a failure is reproducible
)

INLINE = {
    "hardware": {
        "name": "bench",
        "devices": [
            {"name": "heater", "adapter": "test.controller", "params": {"port": "/dev/ttyT0"}},
            {"name": "probe", "adapter": "test.thermo", "params": {"channel": 2}},
        ],
        "channels": [
            {
                "name": "heater_sp",
                "kind": "temperature",
                "unit": "degC",
                "source": {"device": "heater", "field": "setpoint"},
                "calibration": {"kind": "piecewise_linear", "points": [[0, 0], [100, 110]]},
            },
            {
                "name": "sample_t",
                "kind": "temperature",
                "unit": "K",
                "source": {"device": "probe", "field": "temperature"},
            },
        ],
    },
    "method": {
        "name": "m",
        "steps": [
            {"kind": "hold", "target": "heater_sp", "value": 50, "duration_s": 1},
            {"kind": "watch", "target": "sample_t", "above": 300},
        ],
    },
    "procedure": {"id": "test.recipe"},
    "operator": {"id": "ab"},
    "sample": {"id": "s1"},
    "sinks": [{"id": "test.mirror", "config": {"url": "x"}}],
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["heater", "heater_sp", "test.controller", "linear", "hold", "../x.toml"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a nested structure of dicts and lists."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated_experiments(draw: st.DrawFn) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(INLINE))  # deep copy
    for _ in range(draw(st.integers(1, 3))):
        loc = draw(st.sampled_from(paths(data)))
        if not loc:
            continue
        parent = data
        for part in loc[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add_key"]))
        if action == "replace":
            parent[loc[-1]] = draw(values)
        elif action == "delete":
            del parent[loc[-1]]
        elif isinstance(parent[loc[-1]], dict):
            parent[loc[-1]][draw(st.text(min_size=1, max_size=8))] = draw(values)
    return data


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        else:  # pragma: no cover - main always exits
            code = -1
    return code if isinstance(code, int) else -1, out.getvalue() + err.getvalue()


def assert_clean_exit(code: int, text: str) -> None:
    assert code in (0, 2), text
    assert "Traceback" not in text
    assert "internal error" not in text


@SETTINGS
@given(data=mutated_experiments())
def test_mutated_inline_experiments_never_escape_the_cli(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        for command in (["validate", str(path)], ["config", "validate", str(path)]):
            assert_clean_exit(*run_cli(*command))


edits = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace"]),
        st.floats(0, 1),
        st.text(alphabet="[]{}=\"',.:#-\n \t\\0123abcxyz\x00é", max_size=6),
    ),
    min_size=1,
    max_size=4,
)


def apply_edits(text: str, ops: list[tuple[str, float, str]]) -> str:
    for action, where, fragment in ops:
        at = int(where * len(text))
        if action == "delete":
            text = text[:at] + text[at + len(fragment) + 1 :]
        elif action == "insert":
            text = text[:at] + fragment + text[at:]
        else:
            text = text[:at] + fragment + text[at + len(fragment) :]
    return text


@SETTINGS
@given(
    target=st.sampled_from(["experiment.yaml", "rig.toml", "soak.method.toml"]),
    ops=edits,
)
def test_text_edits_of_the_file_set_never_escape_the_cli(target, ops):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        exp = tc.write_set(root)
        path = root / target
        path.write_text(apply_edits(path.read_text(), ops), encoding="utf-8")
        commands = [
            ["validate", str(exp)],
            ["config", "validate", str(path)],
            ["hardware", "validate", str(root / "rig.toml")],
            [
                "method",
                "validate",
                str(root / "soak.method.toml"),
                "--hardware",
                str(root / "rig.toml"),
            ],
        ]
        for command in commands:
            assert_clean_exit(*run_cli(*command))
