"""Finalize's rules for files other producers put in a bundle (capa.bundle.unfinished)."""

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from capa.bundle.finalize import finalize_bundle
from capa.bundle.integrity import verify_bundle
from capa.bundle.manifest import read_manifest

SCHEMA = pa.schema(
    [pa.field("t_mono_ns", pa.int64()), pa.field("file", pa.string())],
    metadata={b"capa.files_column": b"file", b"capa.written_by": b"producer"},
)


def _table_stream(path, files):
    """A producer's own in-flight table: one batch per file it names."""
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, SCHEMA) as writer:
        for i, name in enumerate(files):
            writer.write_batch(
                pa.record_batch([pa.array([2 * i, 2 * i + 1]), pa.array([name, name])], SCHEMA)
            )


def test_unfinished_files_are_removed_and_rows_naming_missing_files_dropped(open_writer, make_rows):
    writer = open_writer()
    writer.submit(make_rows(0, 10))
    writer.close("completed", finalize=False)
    video = writer.bundle / "video"
    (video / "cam").mkdir(parents=True)
    (video / "cam" / "000000.avi").write_bytes(b"a")
    (video / "cam" / "000001.in-flight.avi").write_bytes(b"bb")  # killed while writing it
    # Rows for 000001 were durable before its rename; 000002 never existed; a row with no
    # file is kept; a path leaving the bundle counts as missing.
    _table_stream(
        video / "cam.frames.in-flight.arrows",
        ["cam/000000.avi", "cam/000001.avi", None, "../../manifest.json"],
    )

    result = finalize_bundle(writer.bundle)

    assert result.ok
    assert verify_bundle(writer.bundle).ok
    assert not (video / "cam" / "000001.in-flight.avi").exists()
    table = pq.read_table(video / "cam.frames.parquet")
    assert table.column("file").to_pylist() == ["cam/000000.avi"] * 2 + [None] * 2
    warnings = read_manifest(writer.bundle).custom["finalize_warnings"]
    assert "video/cam/000001.in-flight.avi: removed an unfinished file (2 bytes)" in warnings[0]
    dropped = [w for w in warnings if "dropped 4 rows" in w]
    assert dropped == [
        "video/cam.frames.parquet: dropped 4 rows whose 'file' file is not in the bundle "
        "(../../manifest.json, cam/000001.avi)"
    ]
    assert read_manifest(writer.bundle).counts["frames"] == {"cam": 4}


def test_tables_without_the_key_and_complete_tables_are_untouched(open_writer, make_rows):
    writer = open_writer()
    writer.submit(make_rows(0, 10))
    writer.close("completed", finalize=False)
    (writer.bundle / "video").mkdir()
    (writer.bundle / "video" / "a.avi").write_bytes(b"a")
    _table_stream(writer.bundle / "video" / "a.frames.in-flight.arrows", ["a.avi"])
    result = finalize_bundle(writer.bundle)
    assert result.ok
    assert read_manifest(writer.bundle).custom.get("finalize_warnings", []) == []
    assert pq.read_table(writer.bundle / "video" / "a.frames.parquet").num_rows == 2
