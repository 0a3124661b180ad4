"""Unit names and the few conversions capa applies itself (temperatures).

Channels carry unit *labels*; capa converts only between the temperature scales labs mix
daily (a controller in degF, a thermocouple card in K, the method in degC). Those are
affine, so they are written out here rather than pulling in a units library for three
formulas. Any other pair of different units is "not convertible" and validation says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["UnitError", "canonical_unit", "convert", "is_convertible"]

_ALIASES: dict[str, str] = {
    "degc": "degC",
    "°c": "degC",
    "celsius": "degC",
    "degf": "degF",
    "°f": "degF",
    "fahrenheit": "degF",
    "k": "K",
    "kelvin": "K",
}

# scale -> (factor, offset) such that kelvin = value * factor + offset
_TO_KELVIN: dict[str, tuple[float, float]] = {
    "K": (1.0, 0.0),
    "degC": (1.0, 273.15),
    "degF": (5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
}


class UnitError(ValueError):
    """Two units cannot be converted into each other."""


def canonical_unit(unit: str) -> str:
    """The canonical spelling of ``unit`` (``°C`` -> ``degC``); unknown units unchanged."""
    return _ALIASES.get(unit.strip().lower(), unit.strip())


def is_convertible(src: str, dst: str) -> bool:
    """Whether :func:`convert` can map values in ``src`` to ``dst``."""
    a, b = canonical_unit(src), canonical_unit(dst)
    return a == b or (a in _TO_KELVIN and b in _TO_KELVIN)


def convert(values: npt.ArrayLike, src: str, dst: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Convert values (vectorised) from ``src`` to ``dst``; raises :class:`UnitError`."""
    import numpy as np

    a, b = canonical_unit(src), canonical_unit(dst)
    x = np.asarray(values, dtype=np.float64)
    if a == b:
        return x
    if a not in _TO_KELVIN or b not in _TO_KELVIN:
        raise UnitError(f"cannot convert {src!r} to {dst!r}")
    fa, oa = _TO_KELVIN[a]
    fb, ob = _TO_KELVIN[b]
    kelvin = x * fa + oa
    result: np.ndarray[Any, np.dtype[np.float64]] = (kelvin - ob) / fb
    return result
