"""run.log bindings (seed 003): run-wide values and task-scoped step values."""

from __future__ import annotations

import json
import threading

import anyio

import capa
from capa.bundle.runlog import RunLog


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bind_run_reaches_loggers_handed_out_before(tmp_path):
    log = RunLog(tmp_path / "run.log", "r1")
    early = log.bind(procedure_id="p")
    log.bind_run(operator_id="ab")
    early.info("one")
    log.logger.info("two", operator_id="explicit")
    log.close()
    one, two = _lines(tmp_path / "run.log")
    assert (one["operator_id"], one["procedure_id"], one["run_id"]) == ("ab", "p", "r1")
    assert two["operator_id"] == "explicit"  # the call's own value wins


def test_log_context_is_scoped_to_the_task(tmp_path):
    log = RunLog(tmp_path / "run.log", "r1")
    inside = threading.Event()
    outside_done = threading.Event()

    def other_thread() -> None:
        inside.wait(5)
        log.logger.info("other_thread")
        outside_done.set()

    async def main() -> None:
        with capa.log_context(step_id=3, step_kind="ramp"):
            log.logger.info("in_step")
            with capa.log_context(step_id=4):
                log.logger.info("nested")
            async with anyio.create_task_group() as tg:
                tg.start_soon(_child, log)
            inside.set()
            await anyio.to_thread.run_sync(outside_done.wait, 5)
        log.logger.info("after")

    t = threading.Thread(target=other_thread)
    t.start()
    anyio.run(main)
    t.join(5)
    log.close()
    by_event = {line["event"]: line for line in _lines(tmp_path / "run.log")}
    assert (by_event["in_step"]["step_id"], by_event["in_step"]["step_kind"]) == (3, "ramp")
    assert (by_event["nested"]["step_id"], by_event["nested"]["step_kind"]) == (4, "ramp")
    assert by_event["child_task"]["step_id"] == 3
    assert "step_id" not in by_event["other_thread"]
    assert "step_id" not in by_event["after"]


async def _child(log: RunLog) -> None:
    log.logger.info("child_task")
