"""Bad method files: `capa method validate` / `capa validate` exit 2, one clear line each."""

from __future__ import annotations

import pytest

from ..run.conftest import CapaProcess
from .conftest import write_recipe

pytestmark = pytest.mark.slow

SCHEMA_ERRORS = """\
name = "bad"

[[steps]]
kind = "sepoint"
target = "oven_sp"
value = 1

[[steps]]
kind = "setpoint"
target = "oven_sp"

[[steps]]
kind = "ramp"
target = "oven_sp"
end_value = 3
rate_per_second = 0

[[steps]]
kind = "wait"

[[steps]]
kind = "wait"
end_condition = { channel = "oven_pv", op = "=>", value = 3 }

[[steps]]
kind = "ramp"
target = "oven_sp"
end_value = 3
rate_per_second = 1
duration_s = 2
"""

REFERENCE_ERRORS = """\
name = "bad refs"

[[steps]]
kind = "hold"
target = "nope"
value = 3
duration_s = 1

[[steps]]
kind = "setpoint"
target = "oven_pv"
value = 3

[[steps]]
kind = "wait"
end_condition = { channel = "oven_tc", op = ">", value = 3 }
"""


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[error]")]


def test_schema_errors_one_line_each(capa_proc: CapaProcess):
    write_recipe(capa_proc.tmp, SCHEMA_ERRORS)
    proc = capa_proc.run("method", "validate", "test.method.toml")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = _error_lines(proc.stdout + proc.stderr)
    expected = [
        (
            "steps[0].kind",
            "unknown step kind 'sepoint' (did you mean 'setpoint'?); available: acquire, hold, "
            "prompt, ramp, safe_shutdown, setpoint, wait",
        ),
        ("steps[1].value", "field required"),
        ("steps[2].rate_per_second", "ramp rate_per_second must not be zero"),
        ("steps[3]", "wait needs duration_s, end_condition or both"),
        ("steps[4].end_condition.op", "Input should be '>', '>=', '<', '<=' or '=='"),
        ("steps[5]", "ramp needs exactly one of rate_per_second and duration_s"),
    ]
    assert len(lines) == len(expected), lines
    for line, (path, fragment) in zip(lines, expected, strict=True):
        assert f" {path} :: " in line, line
        assert fragment in line, line
        assert "test.method.toml:" in line  # file and line number


@pytest.mark.parametrize("how", ["method", "experiment"])
def test_reference_errors_one_line_each(capa_proc: CapaProcess, how: str):
    write_recipe(capa_proc.tmp, REFERENCE_ERRORS)
    if how == "method":
        proc = capa_proc.run("method", "validate", "test.method.toml", "--hardware", "rig.toml")
    else:
        proc = capa_proc.run("validate", "recipe.yaml")
    assert proc.returncode == 2
    lines = _error_lines(proc.stdout + proc.stderr)
    assert len(lines) == 3, lines
    assert "steps[0].target :: step.target_unknown" in lines[0]
    assert "'nope', which the hardware does not declare" in lines[0]
    assert "steps[1].target :: step.target_not_writable" in lines[1]
    assert "source oven.pv is not writable" in lines[1]
    assert "steps[2].end_condition.channel :: step.target_unknown" in lines[2]


def test_clean_recipe_validates(capa_proc: CapaProcess):
    from .test_recipe_run import METHOD

    write_recipe(capa_proc.tmp, METHOD)
    proc = capa_proc.run("validate", "recipe.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = capa_proc.run("method", "validate", "test.method.toml", "--hardware", "rig.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[01] ramp" in proc.stdout
