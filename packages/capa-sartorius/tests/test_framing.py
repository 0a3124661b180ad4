"""Reassembly by protocol rules, whatever the read chunks are."""

import pytest

from capa_sartorius import sbi, xbpi
from capa_sartorius.framing import SbiCommandSplitter, SbiLineSplitter, XbpiSplitter

LINES = [
    sbi.format_weight(1.0, "g", stable=True),
    sbi.format_weight(2.0, "g", stable=False, ident="N"),
    sbi.format_special("High"),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 16, 100])
def test_sbi_lines_reassemble_from_any_chunking(chunk):
    stream = b"".join(LINES)
    split = SbiLineSplitter()
    out = []
    for i in range(0, len(stream), chunk):
        out += split.feed(stream[i : i + chunk])
    assert out == LINES
    assert split.pending == b""


def test_sbi_line_splitter_keeps_a_partial_line():
    split = SbiLineSplitter()
    assert split.feed(b"+   1.0000 g") == []
    assert split.pending == b"+   1.0000 g"
    assert split.feed(b"  \r\n") == [b"+   1.0000 g  \r\n"]


def test_sbi_line_splitter_surfaces_runaway_garbage():
    split = SbiLineSplitter()
    out = split.feed(b"x" * 300)
    assert out == [b"x" * 300]


@pytest.mark.parametrize(
    ("stream", "commands"),
    [
        (b"\x1bP\r\n\x1bT\r\n", [b"\x1bP", b"\x1bT"]),
        (b"\x1bP\x1bT", [b"\x1bP", b"\x1bT"]),  # CR LF optional
        (b"\x1bx1_\r\n\x1bP", [b"\x1bx1_", b"\x1bP"]),
        (b"\r\n\x00\x1bZ\r\n", [b"\x1bZ"]),  # noise between commands
    ],
)
def test_sbi_commands_split(stream, commands):
    for chunk in (1, len(stream)):
        split = SbiCommandSplitter()
        out = []
        for i in range(0, len(stream), chunk):
            out += split.feed(stream[i : i + chunk])
        assert out == commands


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_xbpi_frames_reassemble_by_length(chunk):
    frames = [
        bytes.fromhex("0b4148bba3d70a3d30824507"),  # captured net weight
        bytes.fromhex("1741544d534531323033532d3130302d445200000000002b"),  # model
        bytes.fromhex("03410044"),  # acknowledge
    ]
    stream = b"".join(frames)
    split = XbpiSplitter(replies=True)
    out = []
    for i in range(0, len(stream), chunk):
        out += split.feed(stream[i : i + chunk])
    assert out == frames


def test_xbpi_splitter_resynchronises_after_garbage():
    frame = xbpi.encode_request(xbpi.OP_READ_NET)
    split = XbpiSplitter()
    assert split.feed(b"\x00\x01\x02" + frame) == [frame]
    assert split.dropped == 3


def test_xbpi_inter_byte_gap_drops_a_stale_partial_frame():
    # ESC (0x1B) of a stray SBI command looks like a length byte of 27.
    frame = xbpi.encode_request(xbpi.OP_READ_MODEL)
    split = XbpiSplitter(gap_s=0.1)
    assert split.feed(b"\x1bx1_\r\n", now=10.0) == []
    assert split.feed(frame, now=10.5) == [frame]
    assert split.dropped == 6
    # Without the gap the same bytes are held as one long bogus frame.
    plain = XbpiSplitter()
    assert plain.feed(b"\x1bx1_\r\n" + frame) == []
