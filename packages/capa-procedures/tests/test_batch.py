"""capa.builtin.batch against a fake run context whose run_child is scripted."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from capa_procedures.batch import Batch, BatchConfig
from capa_procedures.errors import ProcedureError

from .fakes import FakeChannels, FakeRun

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@dataclass
class Child:
    run_id: str
    bundle_path: str
    run_status: str
    bundle_status: str = "sealed"
    integrity_status: str = "ok"
    exit_reason: str = ""


def _ctx(statuses, *, stop_during=None):
    run = FakeRun(steps=[], channels=FakeChannels({}))
    run.experiment = SimpleNamespace(sample=SimpleNamespace(id="PMMA"))
    calls = []

    async def run_child(procedure_id, config, *, sample_id=None, custom=None):
        calls.append((procedure_id, config, sample_id, custom))
        n = len(calls)
        if stop_during == n:
            run.external_stop.set()
            return Child(f"child{n}", f"/runs/child{n}", "aborted", exit_reason="operator_stop")
        status = statuses[n - 1]
        return Child(
            f"child{n}",
            f"/runs/child{n}",
            status,
            exit_reason="" if status == "completed" else "boom",
        )

    run.run_child = run_child
    return run, calls


def _batch(**kw):
    cfg = {"iterations": 3, "inner": {"id": "capa.builtin.recipe_runner", "config": {"a": 1}}}
    return Batch(BatchConfig.model_validate({**cfg, **kw}))


async def test_all_children_complete_with_linked_manifests():
    run, calls = _ctx(["completed"] * 3)
    await _batch().run(run)
    assert [c[2] for c in calls] == ["PMMA-1", "PMMA-2", "PMMA-3"]
    assert calls[1][3] == {
        "batch": {"batch_id": run.run_id, "iteration": 2, "parent_sample_id": "PMMA"}
    }
    assert calls[0][:2] == ("capa.builtin.recipe_runner", {"a": 1})
    assert run.events.kinds() == [
        "batch.started",
        *["batch.child.started", "batch.child.ended"] * 3,
        "batch.ended",
    ]
    ended = [m for k, _, _, m in run.events.rows if k == "batch.child.ended"]
    assert {"run_status", "bundle_status", "exit_reason", "bundle_path"} <= set(ended[0])


@pytest.mark.parametrize(("fail_fast", "runs"), [(True, 2), (False, 3)])
async def test_one_failing_child(fail_fast, runs):
    run, calls = _ctx(["completed", "crashed", "completed"])
    with pytest.raises(ProcedureError, match="1 of"):
        await _batch(fail_fast=fail_fast).run(run)
    assert len(calls) == runs
    end = next(m for k, _, _, m in run.events.rows if k == "batch.ended")
    assert (end["failed"], end["not_run"]) == (1, 3 - runs)


async def test_parent_stop_ends_the_batch_without_error():
    run, calls = _ctx(["completed"] * 3, stop_during=2)
    await _batch(cooldown_s=0.01).run(run)
    assert len(calls) == 2
    end = next(m for k, _, _, m in run.events.rows if k == "batch.ended")
    assert end["stopped"] is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inner": {"id": "capa.builtin.batch"}}, "a batch cannot run a batch"),
        ({"sample_id_template": "{sample}-{iteration}"}, "unknown field(s) sample"),
        ({"sample_id_template": "{parent_sample_id}"}, "must contain {iteration}"),
        ({"sample_id_template": "{iteration"}, "sample_id_template"),
        ({"iterations": 0}, "greater than or equal to 1"),
    ],
)
def test_config_refused_at_load(changes, message):
    cfg = {"iterations": 3, "inner": {"id": "x.y"}, **changes}
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BatchConfig.model_validate(cfg)
