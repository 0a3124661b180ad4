import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from capa import PluginHost
from capa.bundle.manifest import read_manifest
from capa.bundle.sink import BundleSink
from capa.errors import BundleError


@dataclass
class Ctx:
    run_id: str
    bundle_path: Path
    manifest_fields: dict | None = None


def test_builtin_plugin_registers_the_bundle_sink():
    host = PluginHost()
    host.load(entry_points=False)
    assert host.sinks.get("capa.bundle") is BundleSink
    assert not [r for r in host.rejections if r.id == "capa.bundle"]


def test_sink_records_and_seals(runs_root, make_rows):
    sink = BundleSink(BundleSink.Config(flush_interval_s=0.05, queue_size=8))
    ctx = Ctx("20260524T143200-7f3a", runs_root / "20260524T143200-7f3a", {"tags": ["sink"]})

    async def main() -> None:
        await sink.open(ctx)
        for i in range(5):
            sink.consume(make_rows(i * 10, 10))
        sink.writer.emit("sink.test", "hello")
        await sink.close("completed")

    anyio.run(main)
    assert sink.result is not None
    assert sink.result.ok
    m = read_manifest(ctx.bundle_path)
    assert m.tags == ["sink"]
    assert m.counts["scalars"]["rows"] == 50
    assert m.counts["events"] == 1


def test_sink_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="extra"):
        BundleSink.Config(flush=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="greater than 0"):
        BundleSink.Config(flush_interval_s=0)
    with pytest.raises(BundleError, match="not open"):
        BundleSink(BundleSink.Config()).consume(None)  # type: ignore[arg-type]


def test_consume_async_waits_off_the_loop_when_the_queue_is_full(runs_root, make_rows):
    sink = BundleSink(BundleSink.Config(flush_interval_s=0.05, queue_size=1))
    ctx = Ctx("20260524T143200-7f3b", runs_root / "20260524T143200-7f3b")
    ticks = [0]

    async def main() -> None:
        await sink.open(ctx)
        writer = sink.writer
        gate = threading.Event()
        real_accept = writer._accept

        def slow_accept(record):
            gate.wait()
            real_accept(record)

        writer._accept = slow_accept
        done = anyio.Event()

        async def produce() -> None:
            for i in range(4):
                await sink.consume_async(make_rows(i * 10, 10))
            done.set()

        async def heartbeat() -> None:
            # the loop stays responsive while the producer is held back
            while ticks[0] < 5:
                ticks[0] += 1
                await anyio.lowlevel.checkpoint()
            opened_by.append("event loop")
            gate.set()

        def safety_net() -> None:  # if the loop were blocked, nothing else would open it
            opened_by.append("timer")
            gate.set()

        timer = threading.Timer(5.0, safety_net)
        timer.start()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                tg.start_soon(heartbeat)
        finally:
            timer.cancel()
        assert done.is_set()
        await sink.close("completed")

    opened_by: list[str] = []
    anyio.run(main)
    assert opened_by[0] == "event loop"
    assert ticks[0] == 5
    assert sink.result is not None
    assert sink.result.manifest.counts["scalars"]["rows"] == 40
