"""Turn decoded readings into capa emissions: samples plus native device records.

One :class:`Row` per line / telegram received (or per failed exchange). Every row becomes
a sample -- unstable, overloaded and failed ones included, each with its status -- and a
device record carrying what the balance actually sent and the request / receive times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import capa
from capa_sartorius.reading import Reading, to_grams

__all__ = ["FAMILY", "FIELDS", "Row", "to_emissions"]

FAMILY = "sartorius"
FIELDS = ("mass", "stable", "overload", "underload")


@dataclass(frozen=True, slots=True)
class Row:
    """One received reading (``reading is None``: the exchange failed with ``comm_error``).

    Times are run-clock nanoseconds.
    """

    t_request_ns: int
    t_receive_ns: int
    raw: bytes
    reading: Reading | None
    unit: str = "g"
    """Unit to interpret the value in (the last unit the balance showed, for SBI lines
    whose unit field is blank while unstable)."""
    comm_error: str = ""
    gross: float = math.nan
    """Gross mass in grams (xBPI with ``gross = true``), else NaN."""


def _mass_status(row: Row, mass: float) -> capa.SampleStatus:
    reading = row.reading
    if reading is None:
        return capa.SampleStatus.COMM_ERROR
    if reading.overload:
        return capa.SampleStatus.OVERLOAD
    if reading.underload:
        return capa.SampleStatus.UNDERRANGE
    # A busy cell (re-zeroing) sends no value but is not failing: a value follows shortly.
    failed = reading.error_code is not None or bool(reading.status_text and not reading.busy)
    if not reading.busy and (failed or math.isnan(mass)):
        return capa.SampleStatus.SENSOR_FAIL
    if not reading.stable:
        return capa.SampleStatus.UNSTABLE
    return capa.SampleStatus.OK


def _flag(value: bool, row: Row) -> float:
    return math.nan if row.reading is None else float(value)


def to_emissions(rows: Sequence[Row], *, gross: bool = False) -> list[capa.Emission]:
    """A :class:`capa.SampleBatch` and a :class:`capa.DeviceRecords` for ``rows``.

    With ``gross``, the batch also carries the ``gross`` field.
    """
    t: list[int] = []
    mass: list[float] = []
    stable: list[float] = []
    over: list[float] = []
    under: list[float] = []
    mass_status: list[str] = []
    flag_status: list[str] = []
    records: dict[str, list[object]] = {
        "t_mono_ns": [],
        "t_request_ns": [],
        "t_receive_ns": [],
        "raw": [],
        "value": [],
        "unit": [],
        "mass_g": [],
        "stable": [],
        "overload": [],
        "underload": [],
        "error_code": [],
        "ident": [],
        "comm_error": [],
    }
    for row in rows:
        r = row.reading
        grams = math.nan if r is None else to_grams(r.value, r.unit or row.unit)
        status = _mass_status(row, grams)
        t.append(row.t_receive_ns)
        mass.append(grams)
        stable.append(_flag(r is not None and r.stable, row))
        over.append(_flag(r is not None and r.overload, row))
        under.append(_flag(r is not None and r.underload, row))
        mass_status.append(status.value)
        flag_status.append(
            capa.SampleStatus.COMM_ERROR.value if r is None else capa.SampleStatus.OK.value
        )
        # t_mono_ns is the sample's time (the reply's arrival), the join key every
        # device-records table shares; raw stays bytes (a binary column, not hex text).
        records["t_mono_ns"].append(row.t_receive_ns)
        records["t_request_ns"].append(row.t_request_ns)
        records["t_receive_ns"].append(row.t_receive_ns)
        records["raw"].append(bytes(row.raw))
        records["value"].append(math.nan if r is None else r.value)
        records["unit"].append("" if r is None else r.unit)
        records["mass_g"].append(grams)
        records["stable"].append(r is not None and r.stable)
        records["overload"].append(r is not None and r.overload)
        records["underload"].append(r is not None and r.underload)
        records["error_code"].append(-1 if r is None or r.error_code is None else r.error_code)
        records["ident"].append("" if r is None else r.ident)
        records["comm_error"].append(row.comm_error)
    values = {"mass": mass, "stable": stable, "overload": over, "underload": under}
    statuses = {
        "mass": mass_status,
        "stable": list(flag_status),
        "overload": list(flag_status),
        "underload": list(flag_status),
    }
    if gross:
        values["gross"] = [row.gross for row in rows]
        statuses["gross"] = [
            status if row.reading is None or not math.isnan(row.gross) else "sensor_fail"
            for row, status in zip(rows, mass_status, strict=True)
        ]
    batch = capa.SampleBatch(t_mono_ns=t, values=values, status=statuses)
    return [batch, capa.DeviceRecords(family=FAMILY, columns=records)]
