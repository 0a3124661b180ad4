"""Fixtures shared by the bundle tests: a runs root and a way to fill a writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from capa import ScalarRows
from capa.bundle.schema import scalar_batch
from capa.bundle.writer import BundleWriter


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


def rows(start: int, n: int, channel: str = "tc1") -> ScalarRows:
    t = pa.array(range(start, start + n), pa.int64())
    return ScalarRows(scalar_batch(t, channel, t.cast(pa.float64()), unit="degC"))


@pytest.fixture
def make_rows() -> Callable[..., ScalarRows]:
    return rows


@pytest.fixture
def open_writer(runs_root: Path) -> Iterator[Callable[..., BundleWriter]]:
    """Open writers that are closed (without finalizing) if a test leaves them open."""
    opened: list[BundleWriter] = []

    def _open(**kwargs: object) -> BundleWriter:
        kwargs.setdefault("flush_interval_s", 0.05)
        writer = BundleWriter.open(runs_root, **kwargs)  # type: ignore[arg-type]
        opened.append(writer)
        return writer

    yield _open
    for writer in opened:
        writer.close("aborted", "test teardown", finalize=False)


def crash(writer: BundleWriter, rows_expected: int) -> None:
    """Leave ``writer``'s bundle as a kill would: tables unclosed, journals durable.

    Waits until ``rows_expected`` rows were fsynced, then abandons the writer (its thread
    releases every file without writing another byte, like a process that died).
    """
    import time

    deadline = time.monotonic() + 30
    while writer.metrics().rows_durable < rows_expected:
        assert time.monotonic() < deadline, writer.metrics()
        time.sleep(0.01)
    writer.abandon("crashed", "test: simulated kill")
