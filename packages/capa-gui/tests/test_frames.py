"""Display frames: min/max decimation, the droppable bridge, and the observing session."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

import capa
from capa_gui.bridge import DisplayBridge, EventView, ObservedSession
from capa_gui.frames import FrameBuilder, decimate_minmax


def test_decimation_bounds_points_and_keeps_spikes():
    t = np.arange(10_000) / 10_000.0
    v = np.sin(2 * np.pi * t)
    v[4321] = 50.0  # a one-sample spike in a 10 kS/s stream
    v[7000] = -50.0
    dt, dv = decimate_minmax(t, v, 12)
    assert len(dt) <= 24
    assert 50.0 in dv
    assert -50.0 in dv
    assert dt == sorted(dt)


def test_short_series_come_back_whole_and_nan_is_dropped():
    dt, dv = decimate_minmax([0.0, 0.1, 0.2], [1.0, float("nan"), 3.0], 12)
    assert dt == [0.0, 0.2]
    assert dv == [1.0, 3.0]


def test_bridge_never_blocks_and_counts_what_it_drops():
    bridge = DisplayBridge(capacity=10)
    for i in range(25):
        bridge.offer(i)
    assert bridge.dropped == 15
    assert bridge.take_all() == list(range(15, 25))
    assert bridge.take_all() == []


def test_bridge_from_many_threads_loses_nothing_it_does_not_count():
    bridge = DisplayBridge(capacity=100)

    def produce(k: int) -> None:
        for i in range(1000):
            bridge.offer((k, i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    kept = bridge.take_all()
    assert len(kept) + bridge.dropped == 4000
    assert bridge.offered == 4000


def _long_batch(
    channels: list[str], t: np.ndarray, values: dict[str, np.ndarray]
) -> pa.RecordBatch:
    n, k = len(t), len(channels)
    codes = np.tile(np.arange(k, dtype=np.int32), n)
    vals = np.column_stack([values[c] for c in channels]).ravel()
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.repeat(t, k)),
            pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(channels)),
            pa.array(vals),
            pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n * k, dtype=np.int32)), pa.array(["ok"])
            ),
        ],
        names=["t_mono_ns", "channel", "value", "status"],
    )


def test_frame_builder_splits_channels_decimates_and_keeps_latest():
    fb = FrameBuilder(["a", "b"], buckets=5)
    t = np.arange(1000, dtype=np.int64) * 1_000_000  # 1 ms apart
    batch = _long_batch(["a", "b"], t, {"a": np.arange(1000.0), "b": -np.arange(1000.0)})
    fb.add([capa.ScalarRows(batch)])
    fb.add(
        [EventView("note", "hello", "info", "test", 5_000_000, "2026-01-01T00:00:00Z", {"x": 1})]
    )
    frame = fb.frame()
    assert set(frame["series"]) == {"a", "b"}
    ts, vs = frame["series"]["a"]
    assert len(ts) <= 10
    assert vs[0] == 0.0
    assert vs[-1] == 999.0
    assert frame["latest"]["b"] == [0.999, -999.0, "ok"]
    assert [e["message"] for e in frame["events"]] == ["hello"]
    assert frame["events"][0]["t_s"] == 0.005
    again = fb.frame()
    assert again["series"] == {}  # points go out once
    assert again["events"] == []
    snap = fb.snapshot()  # ...but a page that connects later still gets the history
    assert len(snap["series"]["a"][0]) == len(ts)
    assert fb.rows_seen == 2000


def test_frame_builder_reads_a_wide_layout_too():
    fb = FrameBuilder(["x"], buckets=5)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(np.array([1, 2, 3], dtype=np.int64) * 10**9), pa.array([1.0, 2.0, 3.0])],
        names=["t_mono_ns", "x"],
    )
    fb.add([capa.ScalarRows(batch)])
    assert fb.frame()["series"]["x"] == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]


class _Inner:
    def __init__(self) -> None:
        self.submitted: list[object] = []
        self.events: list[str] = []

    def submit(self, record: object) -> None:
        self.submitted.append(record)

    def emit(self, kind: str, message: str, **kw: object) -> None:
        self.events.append(kind)


def test_observed_session_writes_first_then_shows():
    inner, bridge = _Inner(), DisplayBridge(capacity=2)
    session = ObservedSession(inner, bridge)
    rows = [capa.ScalarRows(object()) for _ in range(5)]
    for r in rows:
        session.submit(r)
    session.emit("k", "m", severity="info")
    assert inner.submitted == rows  # the writer got every record
    assert inner.events == ["k"]
    assert bridge.dropped == 3  # the display dropped the overflow (capacity 2)
    shown = bridge.take_all()
    assert isinstance(shown[0], EventView)  # events are kept apart: never pushed out
    assert shown[1:] == rows[-2:]


def test_a_flood_of_samples_never_pushes_out_events():
    bridge = DisplayBridge(capacity=4, event_capacity=3)
    bridge.offer_event("e1")
    for i in range(100):
        bridge.offer(i)
    bridge.offer_event("e2")
    assert bridge.take_all() == ["e1", "e2", 96, 97, 98, 99]
    assert bridge.dropped == 96
    assert bridge.events_dropped == 0
    for i in range(5):
        bridge.offer_event(i)
    assert bridge.take_all() == [2, 3, 4]
    assert bridge.events_dropped == 2


def _pipeline_records(streamed: set[str]) -> list[object]:
    """What the real channel pipeline submits for one block, in the layout asked for."""
    from capa.runtime.channels import ChannelRegistry
    from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
    from capa.runtime.plan import ChannelPlan

    channels = [
        ChannelPlan("a", "daq", "fa", "V", keep_raw=True),
        ChannelPlan("b", "daq", "fb", "V"),
    ]
    out: list[object] = []
    pipe = ChannelPipeline(
        devices=[],
        channels=channels,
        recording=RecordingPlan("record_all", frozenset({"a", "b"}), frozenset()),
        registry=ChannelRegistry(["a", "b"]),
        submit=out.append,
        clock=capa.RunClock(),
        streamed=streamed,
    )
    t = np.arange(1000, dtype=np.int64) * 1_000_000
    status = {"fb": np.where(np.arange(1000) == 999, "overload", "ok")}
    pipe.process(
        "daq",
        capa.SampleBatch(t, {"fa": np.arange(1000.0), "fb": -np.arange(1000.0)}, status),
    )
    return out


def test_sample_rows_make_the_same_frame_as_scalar_rows():
    frames = []
    for streamed in (set(), {"daq"}):
        records = _pipeline_records(streamed)
        kind = capa.SampleRows if streamed else capa.ScalarRows
        assert [type(r) for r in records] == [kind]
        fb = FrameBuilder(["a", "b"], buckets=5)
        fb.add(records)
        frames.append((fb.frame(), fb.rows_seen))
    (long_frame, long_rows), (wide_frame, wide_rows) = frames
    assert wide_frame == long_frame
    assert wide_rows == long_rows == 2000
    assert wide_frame["latest"]["b"] == [0.999, -999.0, "overload"]
    assert set(wide_frame["series"]) == {"a", "b"}  # never "a.raw" or "a.status"


def test_a_wide_channel_without_values_in_a_batch_is_skipped():
    fb = FrameBuilder(["x", "y"], buckets=5)
    meta = {b"capa.role": b"status"}
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(np.array([1, 2], dtype=np.int64) * 10**9),
            pa.array([1.0, 2.0]),
            pa.array([None, None], pa.float64()),
            pa.array(["ok", "ok"]).dictionary_encode(),
        ],
        schema=pa.schema(
            [
                pa.field("t_mono_ns", pa.int64()),
                pa.field("x", pa.float64()),
                pa.field("y", pa.float64()),
                pa.field("x.status", pa.dictionary(pa.int32(), pa.string()), metadata=meta),
            ]
        ),
    )
    fb.add([capa.SampleRows(batch, "d", "d")])
    frame = fb.frame()
    assert set(frame["series"]) == {"x"}
    assert frame["latest"] == {"x": [2.0, 2.0, "ok"]}


def test_observed_session_shows_sample_rows():
    inner = _Inner()
    bridge = DisplayBridge(capacity=4)
    session = ObservedSession(inner, bridge)  # type: ignore[arg-type]
    record = capa.SampleRows(object(), "daq", "daq")
    session.submit(record)
    assert inner.submitted == [record]
    assert bridge.take_all() == [record]
