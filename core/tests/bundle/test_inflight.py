from pathlib import Path

import pyarrow as pa

from capa.bundle.inflight import InflightStream, recover_batches
from capa.bundle.schema import scalar_batch, scalars_schema


def _write(path: Path, batches: int, size: int = 10, close: bool = True) -> InflightStream:
    stream = InflightStream(path, scalars_schema())
    for i in range(batches):
        t = pa.array(range(i * size, (i + 1) * size), pa.int64())
        stream.write(scalar_batch(t, f"c{i % 3}", t.cast(pa.float64())))
    stream.flush()
    if close:
        stream.close()
    return stream


def test_clean_stream_recovers_every_batch(tmp_path):
    path = tmp_path / "s.in-flight.arrows"
    stream = _write(path, 5)
    assert stream.bytes_written == path.stat().st_size
    rec = recover_batches(path)
    assert rec.problem is None
    assert rec.rows == 50
    assert rec.torn_bytes == 0
    assert pa.Table.from_batches(rec.batches).column("t_mono_ns").to_pylist() == list(range(50))


def test_stream_without_end_marker_is_complete_after_a_flush(tmp_path):
    path = tmp_path / "s.in-flight.arrows"
    stream = _write(path, 3, close=False)
    try:
        rec = recover_batches(path)  # what a reader sees after a kill right after a flush
        assert rec.rows == 30
        assert rec.problem is None
    finally:
        stream.close()


def test_every_truncation_point_yields_a_prefix_of_complete_batches(tmp_path):
    source = tmp_path / "s.in-flight.arrows"
    _write(source, 4)
    data = source.read_bytes()
    boundaries = []
    rec = recover_batches(source)
    assert rec.rows == 40
    cut_file = tmp_path / "cut.in-flight.arrows"
    for cut in range(0, len(data), 7):
        cut_file.write_bytes(data[:cut])
        got = recover_batches(cut_file)
        assert got.rows % 10 == 0
        times = [t for b in got.batches for t in b.column("t_mono_ns").to_pylist()]
        assert times == list(range(got.rows))
        assert got.good_bytes <= cut
        if got.problem is None:
            boundaries.append(cut)
        else:
            assert got.torn_bytes == cut - got.good_bytes
    # some cut points fall exactly between messages, most do not
    assert len(boundaries) < len(range(0, len(data), 7))


def test_corrupted_middle_stops_recovery_at_the_damage(tmp_path):
    path = tmp_path / "s.in-flight.arrows"
    _write(path, 6)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    rec = recover_batches(path)
    assert rec.problem is not None
    assert 0 < rec.rows < 60
    times = [t for b in rec.batches for t in b.column("t_mono_ns").to_pylist()]
    assert times == list(range(rec.rows))


def test_empty_or_headerless_file_has_no_schema(tmp_path):
    path = tmp_path / "e.in-flight.arrows"
    path.write_bytes(b"")
    assert recover_batches(path).schema is None
    path.write_bytes(b"\xff\xff\xff\xff\x10\x00")
    rec = recover_batches(path)
    assert rec.schema is None
    assert rec.problem
