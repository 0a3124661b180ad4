"""Prompts answered from another terminal, and a step kind from a third-party distribution."""

from __future__ import annotations

import pytest

from capa.testing import make_distribution

from ..run.conftest import CapaProcess, summary
from .conftest import event_rows, wait_for_event, write_recipe

pytestmark = pytest.mark.slow

PROMPT_METHOD = """\
name = "asks"

[[steps]]
kind = "prompt"
title = "Load the specimen"
message = "close the door"
timeout_s = 60

[[steps]]
kind = "prompt"
title = "Nobody answers this"
timeout_s = 0.3
on_timeout = "continue"
"""


def test_prompt_acknowledged_with_capa_prompt_ack(capa_proc: CapaProcess):
    exp = write_recipe(capa_proc.tmp, PROMPT_METHOD, config={})
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    bundle = wait_for_event(capa_proc, proc, "method.prompt.shown")
    run_id = bundle.name

    shown = capa_proc.run("prompt", "show", run_id, "--runs-root", "runs")
    assert shown.returncode == 0, shown.stderr
    assert "Load the specimen" in shown.stdout
    assert "close the door" in shown.stdout
    ack = capa_proc.run("prompt", "ack", run_id, "--runs-root", "runs", "--by", "alice")
    assert ack.returncode == 0, ack.stderr

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    rows = event_rows(bundle)
    prompts = [(k, sev, m) for k, sev, _, m in rows if k.startswith("method.prompt.")]
    assert [(k, m["index"]) for k, _, m in prompts] == [
        ("method.prompt.shown", 0),
        ("method.prompt.acknowledged", 0),
        ("method.prompt.shown", 1),
        ("method.prompt.unanswered", 1),
    ]
    assert prompts[1][2]["acknowledged_by"] == "alice"
    assert prompts[3][1] == "warning"
    # The exchange files are gone before sealing (the checksums cover the bundle as is).
    assert not list(bundle.glob("prompt.*.json"))
    assert "prompt" not in (bundle / "manifest.sha256").read_text()

    # A sealed run has nothing to acknowledge: one line, exit 2.
    late = capa_proc.run("prompt", "ack", run_id, "--runs-root", "runs")
    assert late.returncode == 2
    assert late.stderr.strip() == f"capa: error: run {run_id} is sealed; it has no prompt waiting"


def test_unanswered_prompt_aborts_by_default(capa_proc: CapaProcess):
    method = """\
    name = "asks"

    [[steps]]
    kind = "prompt"
    title = "Anyone?"
    timeout_s = 0.2
    """
    exp = write_recipe(capa_proc.tmp, method, config={})
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert s["bundle_status"] == "sealed"
    kinds = [k for k, *_ in event_rows(capa_proc.runs / s["run_id"])]
    assert kinds.index("method.prompt.unanswered") < kinds.index("method.step.failed")


PLUGIN = '''
from pydantic import Field

import capa


class PulseConfig(capa.StepConfig):
    """Write a value, record an event, write another."""

    target: str
    high: float
    low: float = 0.0


class Pulse(capa.Step):
    """A lab's own step kind: a setpoint pulse."""

    kind = "acme.pulse"
    Config = PulseConfig
    writes_target = True

    async def execute(self, ctx):
        c = self.config
        await ctx.write_channel(c.target, c.high)
        ctx.run.events.emit("acme.pulse.high", f"pulse on {c.target}", metadata={"i": ctx.index})
        await ctx.sleep(0.05)
        await ctx.write_channel(c.target, c.low)


@capa.hookimpl
def capa_register_steps():
    return [Pulse]
'''

PULSE_METHOD = """\
name = "with a third-party step"

[[steps]]
kind = "setpoint"
target = "oven_sp"
value = 20.0

[[steps]]
kind = "acme.pulse"
target = "oven_sp"
high = 70.0
low = 30.0
"""


def test_third_party_step_kind_works_like_a_builtin(capa_site, tmp_path):
    make_distribution(
        capa_site,
        "acme-steps",
        files={"acme_steps.py": PLUGIN},
        entry_points={"capa": {"acme": "acme_steps"}},
    )
    capa_proc = CapaProcess(tmp_path, site=capa_site)
    exp = write_recipe(capa_proc.tmp, PULSE_METHOD)

    listed = capa_proc.run("method", "validate", "test.method.toml", "--hardware", "rig.toml")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "[01] acme.pulse" in listed.stdout

    # Its fields validate like a built-in's: a missing field is one line, exit 2.
    (capa_proc.tmp / "test.method.toml").write_text(PULSE_METHOD.replace("high = 70.0\n", ""))
    bad = capa_proc.run("validate", "recipe.yaml")
    assert bad.returncode == 2
    assert "steps[1].high :: schema.missing_key: field required" in bad.stdout + bad.stderr
    (capa_proc.tmp / "test.method.toml").write_text(PULSE_METHOD)

    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = event_rows(capa_proc.runs / summary(proc.stdout)["run_id"])
    step1 = [
        (k, m)
        for k, _, _, m in rows
        if m.get("index") == 1 or m.get("step_kind") == "acme.pulse" or k == "acme.pulse.high"
    ]
    assert [k for k, _ in step1] == [
        "method.step.entered",
        "method.command.issued",
        "acme.pulse.high",
        "method.command.issued",
        "method.step.exited",
    ]
    assert step1[0][1]["kind"] == "acme.pulse"
    assert [(m["value"], m["step_kind"], m["device"]) for k, m in step1 if "command" in k] == [
        (70.0, "acme.pulse", "oven"),
        (30.0, "acme.pulse", "oven"),
    ]
    writes = [m["args"]["value"] for k, _, _, m in rows if k == "write"]
    assert writes == [5.0, 30.0, 10.0]  # (value - 10) / 2: the rig's inverse calibration
