"""Bytes captured from a real Watlow EZ-Zone PM3, as published by watlowlib.

Facts only (byte values), transcribed from watlowlib's repository (GraysonBellamy/
watlowlib, MIT): ``tests/fixtures/pm3_stdbus_pv_setpoint.jsonl`` and
``tests/fixtures/pm3_modbus_pv_setpoint.jsonl`` (a PM3R1CA-AAAAAAA at address 1;
Standard Bus 38400 8N1, Modbus RTU 9600 8E1 with Modbus Word Order High_Low), and the
live-capture payloads of ``tests/test_codec.py`` (2026-04-25). watlowlib 0.8.1 does not
ship them in its wheel, so they are copied here as data.
"""

from __future__ import annotations

# Standard Bus: (label, request frame, reply frame) in hex.
STDBUS_ROUNDS: tuple[tuple[str, str, str], ...] = (
    ("read_pv", "55FF0510000006E8010301040101E399",
     "55FF060010000B8802030104010108451E3CD4A728"),
    ("write_setpoint", "55FF051000000AEC01040701010843C40000EB77",
     "55FF060010000A7602040701010843C400008203"),
    ("read_setpoint", "55FF0510000006E80103010701018776",
     "55FF060010000B880203010701010843C40000339A"),
    ("read_hardware_id", "55FF0510000006E80103010101015EA0",
     "55FF060010000B88020301010101060000001C5666"),
    ("read_part_number", "55FF0510000006E80103010109019E6E",
     "55FF0600100018780203010109010910504D33523143412D41414141414141000AB4"),
    ("read_heat_algorithm", "55FF0510000006E8010301080301F00F",
     "55FF060010000A76020301080301 0F010047C56B"),
)  # fmt: skip

# Live PM3 reply payloads: (label, payload hex, parameter id, decoded value).
STDBUS_PAYLOADS: tuple[tuple[str, str, int, object], ...] = (
    ("s32_hardware_id", "02 03 01 01 01 01 06 00 00 00 1C", 1001, 28),
    ("u8_operations_page", "02 03 01 03 02 01 01 02", 3002, 2),
    ("u16_read_lockout", "02 03 01 03 0A 01 03 00 05", 3010, 5),
    ("string_part_number",
     "02 03 01 01 09 01 09 10 50 4D 33 52 31 43 41 2D 41 41 41 41 41 41 41 00",
     1009, "PM3R1CA-AAAAAAA"),
    ("string_device_name", "02 03 01 01 0B 01 09 0B 45 5A 2D 5A 4F 4E 45 20 50 4D 00",
     1011, "EZ-ZONE PM"),
    ("u32_tick_counter", "02 03 01 10 06 01 05 FB 9D 48 F7", 16006, 0xFB9D48F7),
)  # fmt: skip

# Live PM3 error replies: payload hex -> code.
STDBUS_ERRORS: tuple[tuple[str, int], ...] = (("02 81", 0x81), ("02 83", 0x83), ("02 84", 0x84))

# Modbus (High_Low PM3): (label, register, words read or written, decoded value).
MODBUS_ROUNDS: tuple[tuple[str, int, tuple[int, ...], object], ...] = (
    ("read_pv", 360, (17348, 0), 392.0),
    ("read_setpoint", 2160, (17348, 0), 392.0),
    ("write_setpoint", 2160, (17348, 0), 392.0),
    ("read_hardware_id", 0, (0, 28), 28),
)
