"""Hard kills: a writer in another process is SIGKILLed mid-run and the data is recovered."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from capa.bundle.catalog import Catalog
from capa.bundle.manifest import read_manifest
from capa.bundle.paths import ACTIVE_CHECKPOINT
from capa.bundle.recovery import ActiveRun, read_active, recover_stale, write_active
from capa.cli.main import main
from capa.errors import BundleError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

RUN_ID = "20260524T143200-7f3a"
FLUSH_S = 0.2
BATCH = 500

# The child records one channel whose t_mono_ns counts rows 0, 1, 2, ... so the recovered
# rows must be exactly a prefix. After every submit it prints: monotonic ns, rows
# submitted, rows the writer reports durable (fsynced).
CHILD = """
import sys, time
from pathlib import Path
import pyarrow as pa
from capa import ScalarRows
from capa.bundle.schema import scalar_batch
from capa.bundle.writer import BundleWriter

root, run_id, flush_s, batch = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
writer = BundleWriter.open(root, run_id=run_id, flush_interval_s=flush_s)
n = 0
while True:
    t = pa.array(range(n, n + batch), pa.int64())
    writer.submit(ScalarRows(scalar_batch(t, "tc1", t.cast(pa.float64()), unit="degC")))
    writer.emit("test.batch", str(n))
    n += batch
    print(time.monotonic_ns(), n, writer.metrics().rows_durable, flush=True)
    time.sleep(0.002)
"""


def _parse(lines):
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            out.append(tuple(int(p) for p in parts))
    return out


def test_sigkilled_writer_loses_at_most_one_flush_interval(runs_root, capsys):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(runs_root), RUN_ID, str(FLUSH_S), str(BATCH)],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line)
            rec = _parse([line])
            # several flushes have happened and the run is well under way
            if rec and rec[0][2] >= 6 * BATCH and len(seen) > 250:
                break
        kill_ns = time.monotonic_ns()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        seen.extend(child.stdout.readlines())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
    records = _parse(seen)
    assert child.returncode == -signal.SIGKILL
    bundle = runs_root / RUN_ID
    assert read_manifest(bundle).run_status.value == "running"  # the child never closed it

    with pytest.raises(SystemExit) as exit_info:
        main(["finalize", RUN_ID, "--runs-root", str(runs_root)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    assert "run_status:       crashed" in out
    assert "integrity_status: ok" in out

    m = read_manifest(bundle)
    assert (m.run_status.value, m.bundle_status.value, m.integrity.status.value) == (
        "crashed",
        "sealed",
        "ok",
    )
    times = pq.read_table(bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
    recovered = len(times)
    assert times == list(range(recovered))  # a clean prefix: nothing reordered or invented

    durable_before_kill = max(r[2] for r in records)
    submitted_last_seen = max(r[1] for r in records)
    # every batch flushed before the kill is there ...
    assert recovered >= durable_before_kill
    # ... nothing that was never submitted (the child may have submitted one more batch
    # after its last printed line) ...
    assert recovered <= submitted_last_seen + BATCH
    # ... and everything submitted more than one flush interval before the kill survived
    # (plus 100 ms for the fsync itself and scheduling).
    horizon = kill_ns - int((FLUSH_S + 0.1) * 1e9)
    must_have = max((r[1] for r in records if r[0] <= horizon), default=0)
    assert must_have > 0
    assert recovered >= must_have
    lost_upper_bound = submitted_last_seen + BATCH - recovered
    rows_per_interval = max(
        r2[1] - r1[1]
        for r1 in records
        for r2 in records
        if 0 <= r2[0] - r1[0] <= (FLUSH_S + 0.1) * 1e9
    )
    assert lost_upper_bound <= rows_per_interval + BATCH

    assert read_active(runs_root) is None
    row = Catalog(runs_root).get(RUN_ID)
    assert row is not None
    assert (row.run_status, row.bundle_status) == ("crashed", "sealed")
    assert not list(bundle.rglob("*.in-flight.arrows"))
    assert not (bundle / "events.sqlite-wal").exists()
    assert m.counts["events"] >= durable_before_kill // BATCH - 1
    # The accounting of a killed run is bounded, not exact: the last checkpoint (written
    # after an fsync) never claims more rows than the file holds.
    acc = m.counts["accounting"]
    assert acc["status"] == "incomplete", acc
    assert acc["final"] is False
    scalars = acc["files"]["scalars"]
    assert scalars["rows_in_file"] == recovered
    assert 0 < scalars["written"] <= recovered


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_start_marks_a_stale_run_crashed(open_writer, make_rows, runs_root):
    writer = open_writer()
    writer.submit(make_rows(0, 10))
    writer.close("completed", finalize=False)
    # put the bundle back in the state a killed process leaves
    m = json.loads((writer.bundle / "manifest.json").read_text())
    m.update(run_status="running", ended_utc=None)
    (writer.bundle / "manifest.json").write_text(json.dumps(m))
    stale = ActiveRun.for_this_process(writer.run_id, writer.bundle)
    write_active(runs_root, ActiveRun(**{**stale.__dict__, "pid": _dead_pid()}))

    second = open_writer()  # the next start
    assert second.stale_run is not None
    assert second.stale_run.run_id == writer.run_id
    assert second.stale_run.marked_crashed
    assert f"capa finalize {writer.run_id}" in second.stale_run.message
    assert read_manifest(writer.bundle).run_status.value == "crashed"
    row = Catalog(runs_root).get(writer.run_id)
    assert row is not None
    assert row.run_status == "crashed"
    assert read_active(runs_root).run_id == second.run_id  # type: ignore[union-attr]
    second.close()


def test_live_checkpoint_is_respected(runs_root, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        bundle = runs_root / "20260101T000000-beef"
        write_active(
            runs_root,
            ActiveRun(
                **{
                    **ActiveRun.for_this_process("20260101T000000-beef", bundle).__dict__,
                    "pid": sleeper.pid,
                    "pid_start_ticks": None,
                }
            ),
        )
        with pytest.raises(BundleError, match="still recording"):
            recover_stale(runs_root)
        assert (runs_root / ACTIVE_CHECKPOINT).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_reused_pid_counts_as_dead(runs_root):
    me = ActiveRun.for_this_process("20260101T000000-0001", runs_root / "x")
    if me.pid_start_ticks is None:
        pytest.skip("no /proc start times on this platform")
    other = ActiveRun(**{**me.__dict__, "pid_start_ticks": me.pid_start_ticks + 1})
    assert not other.is_alive()
    assert me.is_alive()
    foreign = ActiveRun(**{**me.__dict__, "pid": _dead_pid(), "host": "another-host"})
    assert foreign.is_alive()  # cannot check another machine: never mark it crashed
