"""`capa.builtin.batch` end to end: child bundles, failing children, parent stop."""

from __future__ import annotations

import json
import signal
import textwrap

import pytest

from capa.testing import make_distribution

from ..run.conftest import CapaProcess, manifest, summary
from .conftest import RIG, event_rows, wait_for_event

pytestmark = pytest.mark.slow

# A test procedure that records briefly and crashes on the Nth run (a counter file shared
# by the children), so exactly one child of a batch fails.
FLAKY = '''
from pathlib import Path

import anyio

import capa


class FlakyConfig(capa.ConfigModel):
    counter: str
    fail_on: int


class Flaky(capa.Procedure):
    """Records 0.2 s; raises on the fail_on-th run."""

    id = "test.flaky"
    Config = FlakyConfig

    async def run(self, ctx):
        path = Path(self.config.counter)
        n = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(n))
        await anyio.sleep(0.2)
        if n == self.config.fail_on:
            raise RuntimeError(f"run {n} fails on purpose")


@capa.hookimpl
def capa_register_procedures():
    return [Flaky]
'''


def _batch_experiment(tmp, inner, *, iterations=3, fail_fast=True, method=None):
    (tmp / "rig.toml").write_text(RIG)
    config = {
        "iterations": iterations,
        "cooldown_s": 0.1,
        "inner": inner,
        "sample_id_template": "{parent_sample_id}-rep{iteration}",
        "fail_fast": fail_fast,
    }
    text = textwrap.dedent(
        f"""\
        hardware: rig.toml
        procedure:
          id: capa.builtin.batch
          config: {json.dumps(config)}
        operator: {{id: tester}}
        sample: {{id: PMMA}}
        runtime: {{shutdown_grace_s: 3}}
        """
    )
    if method is not None:
        (tmp / "test.method.toml").write_text(textwrap.dedent(method))
        text += "method: test.method.toml\n"
    (tmp / "batch.yaml").write_text(text)
    return tmp / "batch.yaml"


@pytest.mark.parametrize(("fail_fast", "children"), [(True, 2), (False, 3)])
def test_batch_of_three_with_one_failing_child(capa_site, tmp_path, fail_fast, children):
    make_distribution(
        capa_site,
        "flaky-proc",
        files={"flaky_proc.py": FLAKY},
        entry_points={"capa": {"flaky": "flaky_proc"}},
    )
    capa_proc = CapaProcess(tmp_path, site=capa_site)
    inner = {"id": "test.flaky", "config": {"counter": str(tmp_path / "n"), "fail_on": 2}}
    exp = _batch_experiment(tmp_path, inner, fail_fast=fail_fast)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=180)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # a child failed: parent crashed
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"]) == ("crashed", "sealed")
    assert "1 of" in s["exit_reason"]
    parent = capa_proc.runs / s["run_id"]
    rows = event_rows(parent)
    batch_kinds = [k for k, *_ in rows if k.startswith("batch.")]
    assert batch_kinds == [
        "batch.started",
        *["batch.child.started", "batch.child.ended"] * children,
        "batch.ended",
    ]
    ended = [m for k, _, _, m in rows if k == "batch.child.ended"]
    assert [m["run_status"] for m in ended] == ["completed", "crashed", "completed"][:children]
    assert all(m["bundle_status"] == "sealed" for m in ended)
    assert "fails on purpose" in ended[1]["exit_reason"]
    summary_event = next(m for k, _, _, m in rows if k == "batch.ended")
    assert (summary_event["failed"], summary_event["not_run"]) == (1, 3 - children)

    # One sealed child bundle per iteration, linked to the parent by the batch id.
    for i, m in enumerate(ended, start=1):
        child = capa_proc.runs / m["run_id"]
        assert m["bundle_path"] == str(child)
        assert (child / "manifest.sha256").exists()
        cm = manifest(child)
        assert cm["custom"]["batch"] == {
            "batch_id": s["run_id"],
            "iteration": i,
            "parent_sample_id": "PMMA",
        }
        assert cm["sample"]["id"] == f"PMMA-rep{i}"
        assert cm["procedure"]["id"] == "test.flaky"
        assert cm["run_status"] == m["run_status"]
    assert manifest(parent)["procedure"]["id"] == "capa.builtin.batch"


LONG_METHOD = """\
name = "long"

[[steps]]
kind = "setpoint"
target = "oven_sp"
value = 60.0

[[steps]]
kind = "acquire"
duration_s = 120

[[steps]]
kind = "safe_shutdown"
cool_target = { oven_sp = 20.0 }
"""


def test_stopping_the_parent_stops_the_running_child(capa_proc: CapaProcess):
    inner = {"id": "capa.builtin.recipe_runner", "config": {"auto_acknowledge_prompts": True}}
    exp = _batch_experiment(capa_proc.tmp, inner, method=LONG_METHOD)
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    wait_for_event(capa_proc, proc, "method.step.entered", where=lambda m: m["index"] == 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"]) == ("aborted", "sealed")
    rows = event_rows(capa_proc.runs / s["run_id"])
    ended = [m for k, _, _, m in rows if k == "batch.child.ended"]
    assert len(ended) == 1  # the batch ended with the stopped child
    assert (ended[0]["run_status"], ended[0]["bundle_status"]) == ("aborted", "sealed")
    assert next(m for k, _, _, m in rows if k == "batch.ended")["stopped"] is True
    child_rows = event_rows(capa_proc.runs / ended[0]["run_id"])
    child_kinds = [k for k, *_ in child_rows]
    assert "method.executor.stopped" in child_kinds
    # The child's recipe runner left the oven safe before its bundle was sealed.
    cool = [m for k, _, _, m in child_rows if k == "method.command.issued"]
    assert [(m["step_kind"], m["value"]) for m in cool] == [
        ("setpoint", 60.0),
        ("safe_shutdown", 20.0),
    ]


def test_bad_batch_config_is_refused_at_validation(capa_proc: CapaProcess):
    inner = {"id": "capa.builtin.batch"}
    exp = _batch_experiment(capa_proc.tmp, inner)
    proc = capa_proc.run("validate", str(exp))
    assert proc.returncode == 2
    assert "a batch cannot run a batch" in proc.stdout + proc.stderr


def test_recipe_batch_children_complete(capa_proc: CapaProcess):
    method = """\
    name = "short"

    [[steps]]
    kind = "setpoint"
    target = "oven_sp"
    value = 40.0

    [[steps]]
    kind = "acquire"
    duration_s = 0.2
    """
    inner = {"id": "capa.builtin.recipe_runner", "config": {"auto_acknowledge_prompts": True}}
    exp = _batch_experiment(capa_proc.tmp, inner, iterations=2, method=method)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = event_rows(capa_proc.runs / summary(proc.stdout)["run_id"])
    ended = [m for k, _, _, m in rows if k == "batch.child.ended"]
    assert [m["run_status"] for m in ended] == ["completed", "completed"]
    for m in ended:
        kinds = [k for k, *_ in event_rows(capa_proc.runs / m["run_id"])]
        assert kinds.count("method.step.exited") == 2
