"""What a balance reports, independent of the wire protocol it came over."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["UNIT_TO_GRAMS", "Reading", "to_grams"]

# Conversion factors to grams for the units a Sartorius balance can print. Units that are not
# masses (pcs, %) have no factor: such a reading cannot become a ``mass`` sample.
UNIT_TO_GRAMS: dict[str, float] = {
    "g": 1.0,
    "mg": 1e-3,
    "ug": 1e-6,
    "kg": 1e3,
    "ct": 0.2,
    "lb": 453.59237,
    "oz": 28.349523125,
    "ozt": 31.1034768,
    "dwt": 1.55517384,
    "gn": 0.06479891,
    "gr": 0.06479891,  # grain, as some balances print it
}


def to_grams(value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to grams; NaN for a unit that is not a mass."""
    factor = UNIT_TO_GRAMS.get(unit.strip().lower())
    return value * factor if factor is not None else math.nan


@dataclass(frozen=True, slots=True)
class Reading:
    """One weight reading decoded from either protocol.

    Attributes:
        value: the number the balance printed or sent, in ``unit`` (NaN when the balance
            sent no number: overload, underload, error).
        unit: unit symbol as sent (``g``, ``mg``); empty when the balance left the unit
            field blank, which SBI does while the reading is not stable.
        stable: the balance reported the reading as stable.
        overload: the load is above the weighing range (SBI ``High`` / ``H``).
        underload: the load is below the weighing range (SBI ``Low`` / ``L``).
        error_code: the balance's error number (SBI ``Err 54``), or ``None``.
        ident: the 6-character identification header of a 22-character SBI line
            (``N``, ``G``, ``T``...), or the empty string.
        busy: the balance sent no value because the weighing cell is busy (xBPI
            off-scale marker without overload / underload while re-zeroing; SBI
            ``Cal.Int.`` status records during an adjustment).
        status_text: the word of an SBI status or error line without a number
            (``Cal.Int.``, ``APP. ERR``), else empty.
    """

    value: float
    unit: str
    stable: bool
    overload: bool = False
    underload: bool = False
    error_code: int | None = None
    ident: str = ""
    busy: bool = False
    status_text: str = ""

    @property
    def is_weight(self) -> bool:
        """Whether the reading carries a number (not a special or error line)."""
        return not math.isnan(self.value)
