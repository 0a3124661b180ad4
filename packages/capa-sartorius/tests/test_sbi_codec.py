"""Golden SBI lines and commands: known bytes in, known values out (no I/O)."""

import math

import pytest

from capa_sartorius import sbi
from capa_sartorius.reading import to_grams


@pytest.mark.parametrize(
    ("const", "wire"),
    [
        (sbi.PRINT, b"\x1bP\r\n"),
        (sbi.TARE_ZERO, b"\x1bT\r\n"),
        (sbi.TARE, b"\x1bU\r\n"),
        (sbi.ZERO, b"\x1bV\r\n"),
        (sbi.INTERNAL_ADJUST, b"\x1bZ\r\n"),
        (sbi.MODEL, b"\x1bx1_\r\n"),
        (sbi.SERIAL, b"\x1bx2_\r\n"),
        (sbi.SOFTWARE, b"\x1bx3_\r\n"),
    ],
)
def test_command_bytes(const, wire):
    assert const == wire
    assert sbi.parse_command(wire) == wire[1:].rstrip(b"\r\n").decode()


def test_command_terminator_is_optional_and_esc_is_required():
    assert sbi.parse_command(b"\x1bP") == "P"
    with pytest.raises(sbi.SbiParseError):
        sbi.parse_command(b"P\r\n")
    with pytest.raises(ValueError, match="printable"):
        sbi.command("\x00")


# ------------------------------------------------------------------ encoding (16 / 22)
def test_stable_weight_16_characters():
    line = sbi.format_weight(123.56, "g", stable=True, decimals=2)
    assert line == b"+   123.56 g  \r\n"
    assert len(line) == 16


def test_unstable_weight_leaves_the_unit_blank():
    assert sbi.format_weight(123.56, "g", stable=False, decimals=2) == b"+   123.56    \r\n"


def test_negative_weight_and_three_letter_unit():
    assert sbi.format_weight(-0.5, "mg", stable=True, decimals=1) == b"-      0.5 mg \r\n"
    assert sbi.format_weight(253, "pcs", stable=True, decimals=0) == b"+      253 pcs\r\n"


def test_22_character_line_has_the_identification_header():
    line = sbi.format_weight(123.56, "g", stable=True, decimals=2, ident="N")
    assert line == b"N     +   123.56 g  \r\n"
    assert len(line) == 22


def test_decimals_shrink_when_the_value_field_would_overflow():
    line = sbi.format_weight(12345.678, "g", stable=True, decimals=4)
    assert line == b"+ 12345.68 g  \r\n"  # 8-character value field: two decimals fit


def test_special_and_error_lines():
    assert sbi.format_special("High") == b"      High    \r\n"
    assert sbi.format_special("Low") == b"      Low     \r\n"
    assert sbi.format_error(54) == b"   Err  54    \r\n"
    assert sbi.format_error(101) == b"   Err 101    \r\n"
    assert sbi.format_special("L", ident="Stat") == b"Stat        L       \r\n"


# ------------------------------------------------------------------ decoding
def test_parse_stable_line():
    r = sbi.parse_line(b"+   123.56 g  \r\n")
    assert (r.value, r.unit, r.stable, r.overload, r.underload) == (123.56, "g", True, False, False)
    assert r.error_code is None
    assert r.ident == ""


def test_parse_unstable_line_keeps_the_value():
    r = sbi.parse_line(b"+   123.56    \r\n")
    assert r.value == 123.56
    assert r.unit == ""
    assert not r.stable


def test_parse_negative_and_milligram():
    r = sbi.parse_line(b"-      0.5 mg \r\n")
    assert r.value == -0.5
    assert to_grams(r.value, r.unit) == pytest.approx(-0.0005)


def test_parse_space_sign_is_positive():
    assert sbi.parse_line(b"    0.0000 g  \r\n").value == 0.0


def test_parse_22_character_line():
    r = sbi.parse_line(b"N     +   123.56 g  \r\n")
    assert r.ident == "N"
    assert r.value == 123.56
    assert r.stable


def test_parse_non_verified_digit_brackets():
    # Legal-for-trade balances may bracket the last, non-verified digit.
    r = sbi.parse_line(b"+  123.5[6]g  \r\n")
    assert r.value == 123.56
    assert r.unit == "g"


@pytest.mark.parametrize(
    ("line", "overload", "underload"),
    [
        (b"      High    \r\n", True, False),
        (b"      H       \r\n", True, False),
        (b"      HH      \r\n", True, False),
        (b"      Low     \r\n", False, True),
        (b"      L       \r\n", False, True),
        (b"      LL      \r\n", False, True),
        (b"Stat        High    \r\n", True, False),
    ],
)
def test_parse_overload_underload(line, overload, underload):
    r = sbi.parse_line(line)
    assert math.isnan(r.value)
    assert not r.stable
    assert (r.overload, r.underload) == (overload, underload)
    assert not r.is_weight


@pytest.mark.parametrize(
    ("line", "code"), [(b"   Err  54    \r\n", 54), (b"   Err 101    \r\n", 101)]
)
def test_parse_error_lines(line, code):
    r = sbi.parse_line(line)
    assert r.error_code == code
    assert math.isnan(r.value)


@pytest.mark.parametrize(
    "line",
    [
        b"+   123.56 g  ",  # no CR LF
        b"+   123.56 g\r\n",  # 14 bytes
        b"+   1?#*@!6 g  \r\n",  # garbled value field
        b"*   123.56 g  \r\n",  # bad sign
        b"+   12\xff.56 g  \r\n",  # non-ASCII
        b"+   123.56  g \r\n",  # unit not left aligned
        b"+   123\x0756 g  \r\n",  # control character
        b"",
    ],
)
def test_parse_rejects_malformed_lines(line):
    with pytest.raises(sbi.SbiParseError):
        sbi.parse_line(line)


@pytest.mark.parametrize(
    ("value", "unit", "stable", "ident"),
    [
        (0.0, "g", True, None),
        (-12.3456, "g", False, "N"),
        (219.9999, "g", True, "G"),
        (7, "kg", True, None),
    ],
)
def test_round_trip(value, unit, stable, ident):
    r = sbi.parse_line(sbi.format_weight(value, unit, stable=stable, decimals=4, ident=ident))
    assert r.value == pytest.approx(value)
    assert r.stable is stable
    assert r.unit == (unit if stable else "")
    assert r.ident == (ident or "")


def test_text_lines():
    assert sbi.format_text("ENTRIS224I-1S") == b"ENTRIS224I-1S\r\n"
    assert sbi.parse_text(b"  0037454321  \r\n") == "0037454321"
    with pytest.raises(sbi.SbiParseError):
        sbi.parse_text(b"no terminator")


def test_unit_conversion_table():
    assert to_grams(1.0, "kg") == 1000.0
    assert to_grams(5.0, "ct") == pytest.approx(1.0)
    assert math.isnan(to_grams(3.0, "pcs"))


# ------------------------------------------------------------------ lines real balances print
# From the hardware notes published with sartoriuslib (MSE1203S Cubis, live autoprint and
# identity replies); capa read these as garbage or with the label before issue 13.


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"SerNo.    0031801165\r\n", "0031801165"),
        (b"BAC:        00-39-21\r\n", "00-39-21"),
        (b"WZA8202-N\r\n", "WZA8202-N"),
        (b"BCE3202-1S\r\n", "BCE3202-1S"),
    ],
)
def test_identity_lines_give_the_bare_value(line, value):
    assert sbi.parse_text(line) == value


def test_a_labelled_identity_line_is_not_a_weight_reading():
    with pytest.raises(sbi.SbiParseError):
        sbi.parse_line(b"SerNo.    0031801165\r\n")


def test_calibration_status_record_is_busy_not_garbage():
    r = sbi.parse_line(b"Stat     Cal.Int.   \r\n")
    assert r.busy
    assert r.status_text == "Cal.Int."
    assert r.ident == "Stat"
    assert (r.overload, r.underload) == (False, False)


@pytest.mark.parametrize("word", ["APP. ERR", "DIS. ERR", "PRT. ERR"])
def test_error_words(word):
    r = sbi.parse_line(f"{word:<14}\r\n".encode())
    assert r.status_text == word
    assert not r.busy


@pytest.mark.parametrize(
    ("line", "over", "under", "code"),
    [
        (b"Stat High\r\n", True, False, None),
        (b"Stat Low\r\n", False, True, None),
        (b"H\r\n", True, False, None),
        (b"Stat ERR 101\r\n", False, False, 101),
    ],
)
def test_special_lines_whatever_their_padding(line, over, under, code):
    r = sbi.parse_line(line)
    assert (r.overload, r.underload, r.error_code) == (over, under, code)


@pytest.mark.parametrize(
    ("line", "value", "unit", "stable"),
    [
        (b"N     +    0.031    \r\n", 0.031, "", False),  # live autoprint, unstable
        (b"N     +    0.006 g  \r\n", 0.006, "g", True),
        (b"+     0.00 g  \r\n", 0.0, "g", True),
        (b"-   12.345 mg \r\n", -12.345, "mg", True),
    ],
)
def test_weight_lines_as_printed(line, value, unit, stable):
    r = sbi.parse_line(line)
    assert (r.value, r.unit, r.stable) == (value, unit, stable)
