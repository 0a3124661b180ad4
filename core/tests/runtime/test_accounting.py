"""Sample accounting: each drop reason the pipeline causes, emission checks, the check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capa import DeviceRecords, FrameReceipt, RunClock, SampleBatch
from capa.bundle.accounting import CHECKPOINT_FILE, Ledger, check_accounting
from capa.errors import BundleError, EmissionError
from capa.runtime.channels import ChannelRegistry
from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
from capa.runtime.plan import ChannelPlan
from capa.runtime.worker import DeviceContext, WorkerStats


class Sink:
    def __init__(self) -> None:
        self.records: list[object] = []
        self.fail: Exception | None = None

    def __call__(self, record: object) -> None:
        if self.fail is not None:
            raise self.fail
        self.records.append(record)


def pipeline(sink: Sink, recorded: tuple[str, ...] = ("a", "b")) -> ChannelPipeline:
    channels = [
        ChannelPlan("a", "dev", "x", "V"),
        ChannelPlan("b", "dev", "y", "V"),
    ]
    return ChannelPipeline(
        devices=[],
        channels=channels,
        recording=RecordingPlan("record_all", frozenset(recorded), frozenset({"dev"})),
        registry=ChannelRegistry(c.name for c in channels),
        submit=sink,
        clock=RunClock(),
    )


def counts(p: ChannelPipeline, stream: str = "scalars") -> dict:
    return p.ledger.snapshot()["dev"][stream]


def batch(n: int = 3, **over: object) -> SampleBatch:
    values = {"x": np.arange(n, dtype=float), "y": np.ones(n)}
    values.update(over)  # type: ignore[arg-type]
    return SampleBatch(np.arange(n, dtype=np.int64), values)


def test_valid_batch_counts_samples_times_recorded_channels():
    sink = Sink()
    p = pipeline(sink, recorded=("a",))  # b is mapped but not recorded: not emitted
    p.process("dev", batch(4))
    assert counts(p) == {"emitted": 4, "written": 0, "dropped": {}}
    (record,) = sink.records
    assert record.device == "dev"  # type: ignore[attr-defined]
    assert record.batch.num_rows == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("emission", "message"),
    [
        (SampleBatch(np.int64(5), {"x": np.float64(1.0)}), "dev: t_mono_ns must be a 1-D array"),
        (
            SampleBatch(np.array([5]), {"x": np.float64(1.0), "y": np.ones(1)}),
            "dev: field 'x' is a scalar (0-d)",
        ),
        (batch(3, y=np.ones(2)), "dev: field 'y' has 2 values for 3 times"),
        (batch(2, x=np.ones((2, 2))), "dev: field 'x' is a 2-d array"),
        (batch(2, x=["a", "b"]), "dev: field 'x' is not numeric"),
        (
            SampleBatch(np.arange(2), {"x": np.ones(2)}, {"x": ["ok"]}),
            "dev: status of field 'x' has shape (1,)",
        ),
    ],
)
def test_invalid_emissions_name_device_and_field_and_are_counted(emission, message):
    sink = Sink()
    p = pipeline(sink)
    with pytest.raises(EmissionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        p.process("dev", emission)
    assert sink.records == []
    c = counts(p)
    assert c["emitted"] > 0
    assert c["dropped"] == {"invalid_emission": c["emitted"]}


def test_writer_refusal_is_counted_writer_unavailable_and_raised():
    sink = Sink()
    sink.fail = BundleError("bundle writer of run x is closed")
    p = pipeline(sink)
    with pytest.raises(BundleError):
        p.process("dev", batch(2))
    with pytest.raises(BundleError):
        p.process("dev", DeviceRecords("fam", {"t": [1, 2, 3]}))
    assert counts(p) == {"emitted": 4, "written": 0, "dropped": {"writer_unavailable": 4}}
    assert counts(p, "device_records/fam") == {
        "emitted": 3,
        "written": 0,
        "dropped": {"writer_unavailable": 3},
    }


def test_after_seal_everything_is_counted_after_stop_and_nothing_submitted():
    sink = Sink()
    p = pipeline(sink)
    p.process("dev", batch(2))
    assert p.seal(1.0)
    p.process("dev", batch(5))
    p.process("dev", DeviceRecords("fam", {"t": [1, 2]}))
    p.process("dev", FrameReceipt(0, 1, "t", 0.0))
    assert len(sink.records) == 1
    assert counts(p) == {"emitted": 14, "written": 0, "dropped": {"after_stop": 10}}
    assert counts(p, "device_records/fam")["dropped"] == {"after_stop": 2}
    assert counts(p, "video/dev.frames")["dropped"] == {"after_stop": 1}


def test_device_context_reports_pipeline_failures_instead_of_raising():
    errors: list[tuple[str, BaseException]] = []

    def handler(device: str, emission: object) -> None:
        raise EmissionError(f"{device}: bad")

    ctx = DeviceContext(
        "dev",
        RunClock(),
        handler,
        lambda _c: None,
        WorkerStats(),
        None,
        lambda d, e: errors.append((d, e)),
    )
    ctx.emit(SampleBatch(np.int64(1), {"x": np.float64(1)}))  # must not raise
    assert [d for d, _ in errors] == ["dev"]
    assert isinstance(errors[0][1], EmissionError)
    assert ctx._stats.emit_errors == 1
    assert ctx._stats.samples == 1


# ------------------------------------------------------------------------- the check
def write_checkpoint(tmp_path, devices, *, final=True, exact=True):
    (tmp_path / CHECKPOINT_FILE).write_text(
        json.dumps({"final": final, "exact": exact, "devices": devices})
    )


def entry(emitted, written, **dropped):
    return {"emitted": emitted, "written": written, "dropped": dropped}


def test_balanced_final_ledger_matching_the_files_is_ok(tmp_path):
    write_checkpoint(tmp_path, {"d": {"scalars": entry(10, 7, after_stop=3)}})
    check = check_accounting(tmp_path, {"scalars": 7})
    assert check.status == "ok"
    assert check.block["files"] == {"scalars": {"rows_in_file": 7, "written": 7}}


@pytest.mark.parametrize(
    ("devices", "files", "problem"),
    [
        ({"d": {"scalars": entry(10, 7)}}, {"scalars": 7}, "d -> scalars: emitted 10 != written 7"),
        (
            {"d": {"scalars": entry(10, 10)}},
            {"scalars": 9},
            "the file holds 9 rows, the writer wrote 10",
        ),
        (
            {"d": {"scalars": entry(5, 5, x=1)}},
            {"scalars": 5},
            "emitted 5 != written 5 + dropped 1 (-1 rows",
        ),
        ({}, {"scalars": 4}, "the file holds 4 rows, the writer wrote 0"),
    ],
)
def test_each_kind_of_mismatch_is_found(tmp_path, devices, files, problem):
    write_checkpoint(tmp_path, devices)
    check = check_accounting(tmp_path, files)
    assert check.mismatch
    assert any(problem in p for p in check.problems), check.problems


def test_recovered_run_is_bounded_not_exact(tmp_path):
    write_checkpoint(tmp_path, {"d": {"scalars": entry(30, 10)}}, final=False)
    check = check_accounting(tmp_path, {"scalars": 12})  # two rows past the checkpoint
    assert check.status == "incomplete"
    assert check.block["lost"] == {"d:scalars": 20}
    # ... but fewer rows than were durable at the checkpoint is a mismatch.
    assert check_accounting(tmp_path, {"scalars": 9}).mismatch


def test_no_checkpoint_is_unavailable_and_previous_manifest_block_is_reused(tmp_path):
    assert check_accounting(tmp_path, {"scalars": 3}).status == "unavailable"
    previous = {"final": True, "exact": True, "devices": {"d": {"scalars": entry(3, 3)}}}
    assert check_accounting(tmp_path, {"scalars": 3}, previous).status == "ok"
    (tmp_path / CHECKPOINT_FILE).write_text("{torn")
    assert check_accounting(tmp_path, {}).status == "unavailable"


def test_ledger_is_consistent_under_concurrent_updates():
    import threading

    ledger = Ledger()

    def work() -> None:
        for _ in range(2000):
            ledger.emitted("d", "s", 3)
            ledger.written("d", "s", 2)
            ledger.dropped("d", "s", 1, "r")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.snapshot() == {
        "d": {"s": {"emitted": 24000, "written": 16000, "dropped": {"r": 8000}}}
    }


def test_records_submitted_after_the_writer_was_abandoned_are_counted(tmp_path):
    from capa.runtime.session import RealRunSession
    from capa.runtime.state import RunOutcome

    session = RealRunSession(tmp_path / "runs", flush_interval_s=0.05)
    session.open(RunClock(), {})
    sink = Sink()
    p = pipeline(sink)
    p._submit = session.submit  # the conductor's wiring
    p.ledger = session.ledger
    p.process("dev", batch(3))
    session.abandon_writer()  # the saturation monitor gave up on the writer
    p.process("dev", batch(4))
    p.process("dev", DeviceRecords("fam", {"t": [1, 2]}))
    c = session.ledger.snapshot()["dev"]
    assert c["scalars"]["emitted"] == 14
    assert c["scalars"]["dropped"] == {"writer_abandoned": 8}
    assert c["device_records/fam"]["dropped"] == {"writer_abandoned": 2}
    session.close(RunOutcome.CRASHED, "saturation_deadline: test", {})
    acc = json.loads((session.bundle_path / "manifest.json").read_text())["counts"]["accounting"]
    scalars = acc["devices"]["dev"]["scalars"]
    assert scalars["dropped"]["writer_abandoned"] == 8
    # The first batch was written, or still queued when the writer was given up on.
    assert scalars["written"] + scalars["dropped"].get("abandoned", 0) == 6
    assert acc["status"] == "incomplete"  # an abandoned writer: bounded, not exact
