"""Checksums of the two wire protocols (pure functions, no I/O).

Standard Bus uses the BACnet MS/TP checks (ASHRAE 135 Annex G): a CRC-8 over the
frame header (polynomial x^8 + x^7 + 1) and a CRC-16 over the data (x^16 + x^12 + x^5 + 1),
both started at all-ones and sent as their ones' complement. Modbus RTU uses CRC-16/MODBUS
(reflected polynomial 0xA001, initial 0xFFFF, sent low byte first).
"""

from __future__ import annotations

__all__ = ["bacnet_data_crc", "bacnet_header_crc", "modbus_crc"]


def _table(poly_reflected: int, width: int) -> tuple[int, ...]:
    # Reflected (LSB-first) table-driven CRC: one entry per byte value.
    entries = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
        entries.append(crc & ((1 << width) - 1))
    return tuple(entries)


# x^8 + x^7 + 1 reflected is 0x81; x^16 + x^12 + x^5 + 1 reflected is 0x8408.
_BACNET8 = _table(0x81, 8)
_BACNET16 = _table(0x8408, 16)
_MODBUS16 = _table(0xA001, 16)


def bacnet_header_crc(header: bytes) -> int:
    """The header check byte of a Standard Bus frame.

    Args:
        header: frame type, destination, source and the two length bytes (5 bytes).

    Returns:
        The byte to send after the header (ones' complement of the CRC-8).
    """
    crc = 0xFF
    for byte in header:
        crc = _BACNET8[(crc ^ byte) & 0xFF]
    return ~crc & 0xFF


def bacnet_data_crc(data: bytes) -> bytes:
    """The two data check bytes of a Standard Bus frame, in wire order (low byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _BACNET16[(crc ^ byte) & 0xFF]
    crc = ~crc & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


def modbus_crc(frame: bytes) -> bytes:
    """The CRC-16/MODBUS of ``frame``, in wire order (low byte first)."""
    crc = 0xFFFF
    for byte in frame:
        crc = (crc >> 8) ^ _MODBUS16[(crc ^ byte) & 0xFF]
    return bytes((crc & 0xFF, crc >> 8))
