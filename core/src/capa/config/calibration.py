"""Channel calibrations: raw device value -> engineering value, and back for setpoints.

Every calibration evaluates whole arrays at once with numpy (imported when first used),
so calibrating a block of samples costs one vectorised call, not one Python call per
sample. :meth:`inverse` maps an engineering value back to the raw value a device must be
sent; calibrations without a unique inverse raise :class:`CalibrationError` there.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from capa.components.model import ConfigModel
from capa.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Calibration",
    "CalibrationError",
    "IdentityCalibration",
    "LinearCalibration",
    "LookupCalibration",
    "PiecewiseLinearCalibration",
    "PolynomialCalibration",
]


class CalibrationError(ConfigError):
    """A calibration cannot be applied or inverted for the values given."""


def _as_array(values: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
    import numpy as np

    return np.asarray(values, dtype=np.float64)


class _Base(ConfigModel):
    @property
    def invertible(self) -> bool:
        """Whether :meth:`inverse` can succeed for this calibration."""
        return True

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Engineering values for raw values (array in, array out)."""
        raise NotImplementedError

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Raw values that calibrate to ``value``; raises :class:`CalibrationError`."""
        raise NotImplementedError


class IdentityCalibration(_Base):
    """No calibration: the channel value is the device value."""

    kind: Literal["identity"] = "identity"

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Return the values unchanged (as float64)."""
        return _as_array(raw)

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Return the values unchanged (as float64)."""
        return _as_array(value)


class LinearCalibration(_Base):
    """``value = slope * raw + intercept``, given directly or through two points.

    Attributes:
        slope: gain; with ``intercept``, the direct form.
        intercept: offset added after the gain.
        points: two ``[raw, value]`` pairs, the two-point form (e.g. ice point and
            boiling point); mutually exclusive with ``slope``/``intercept``.
    """

    kind: Literal["linear"]
    slope: float | None = Field(default=None, description="Gain (direct form).")
    intercept: float = Field(default=0.0, description="Offset (direct form).")
    points: tuple[tuple[float, float], tuple[float, float]] | None = Field(
        default=None, description="Two [raw, value] pairs (two-point form)."
    )

    @model_validator(mode="after")
    def _one_form(self) -> LinearCalibration:
        if self.points is not None:
            if self.slope is not None or self.intercept != 0.0:
                raise ValueError("give either slope/intercept or points, not both")
            (x0, _), (x1, _) = self.points
            if x0 == x1:
                raise ValueError("the two points need different raw values")
        elif self.slope is None:
            raise ValueError("linear calibration needs slope (and intercept) or two points")
        if not all(math.isfinite(c) for c in self.coefficients()):
            raise ValueError("slope and intercept must be finite")
        return self

    def coefficients(self) -> tuple[float, float]:
        """``(slope, intercept)`` whichever form was given."""
        if self.points is not None:
            (x0, y0), (x1, y1) = self.points
            slope = (y1 - y0) / (x1 - x0)
            return slope, y0 - slope * x0
        assert self.slope is not None  # guaranteed by the validator
        return self.slope, self.intercept

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``slope * raw + intercept``."""
        slope, intercept = self.coefficients()
        return _as_array(raw) * slope + intercept

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``(value - intercept) / slope``; a zero slope has no inverse."""
        slope, intercept = self.coefficients()
        if slope == 0:
            raise CalibrationError("linear calibration with slope 0 has no inverse")
        return (_as_array(value) - intercept) / slope


class PolynomialCalibration(_Base):
    """``value = c0 + c1*raw + c2*raw**2 + ...`` (coefficients in ascending order).

    Only polynomials of degree 0 < n <= 1 have an exact inverse; higher degrees can be
    used on read-only channels, and validation refuses them as step targets.
    """

    kind: Literal["polynomial"]
    coefficients: tuple[float, ...] = Field(
        min_length=1, description="c0, c1, c2, ... (ascending powers of the raw value)."
    )

    @field_validator("coefficients")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(c) for c in value):
            raise ValueError("coefficients must be finite")
        return value

    def _effective(self) -> tuple[float, ...]:
        coeffs = list(self.coefficients)
        while len(coeffs) > 1 and coeffs[-1] == 0:
            coeffs.pop()
        return tuple(coeffs)

    @property
    def invertible(self) -> bool:
        """Only a first-degree polynomial (a straight line) inverts exactly."""
        return len(self._effective()) == 2

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Evaluate the polynomial (Horner's scheme, vectorised)."""
        import numpy as np

        x = _as_array(raw)
        out = np.zeros_like(x)
        for c in reversed(self.coefficients):
            out = out * x + c
        return out

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Exact for degree 1; other degrees raise :class:`CalibrationError`."""
        coeffs = self._effective()
        if len(coeffs) != 2:
            degree = len(coeffs) - 1
            raise CalibrationError(
                f"polynomial calibration of degree {degree} has no exact inverse; "
                "use piecewise_linear for a channel that is written"
            )
        c0, c1 = coeffs
        return (_as_array(value) - c0) / c1


def _check_table(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    xs = [p[0] for p in points]
    if not all(math.isfinite(v) for p in points for v in p):
        raise ValueError("table values must be finite")
    if any(b <= a for a, b in itertools.pairwise(xs)):
        raise ValueError("raw values in the table must be strictly increasing")
    return points


class PiecewiseLinearCalibration(_Base):
    """Linear interpolation between ``[raw, value]`` points.

    Raw values must increase strictly. Outside the table the result is NaN (a reading
    is never invented) unless ``extrapolate`` is true, when the end segments extend. The
    inverse exists when the values are strictly monotonic too.
    """

    kind: Literal["piecewise_linear"]
    points: tuple[tuple[float, float], ...] = Field(
        min_length=2, description="[raw, value] pairs, raw strictly increasing."
    )
    extrapolate: bool = Field(
        default=False, description="Extend the end segments beyond the table."
    )

    @field_validator("points")
    @classmethod
    def _monotonic(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return _check_table(value)

    @property
    def invertible(self) -> bool:
        """Whether the values are strictly monotonic (so each value has one raw value)."""
        ys = [p[1] for p in self.points]
        pairs = list(itertools.pairwise(ys))
        return all(b > a for a, b in pairs) or all(b < a for a, b in pairs)

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Interpolate; out-of-table raw values give NaN unless extrapolation is allowed."""
        xs, ys = zip(*self.points, strict=True)
        return _interp(_as_array(raw), xs, ys, self.extrapolate)

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Raw values for ``value``; refuses non-monotonic tables and out-of-table values."""
        if not self.invertible:
            raise CalibrationError(
                "piecewise_linear calibration is not monotonic in value, so it has no inverse"
            )
        xs, ys = zip(*self.points, strict=True)
        if ys[0] > ys[-1]:
            xs, ys = xs[::-1], ys[::-1]
        v = _as_array(value)
        out = _interp(v, ys, xs, self.extrapolate)
        import numpy as np

        if np.isnan(out).any() and not np.isnan(v).all():
            raise CalibrationError(
                f"value outside the calibration table [{ys[0]}, {ys[-1]}] and extrapolate is false"
            )
        return out


class LookupCalibration(_Base):
    """Step lookup: a raw value maps to the value of the last table row at or below it.

    For discrete settings (a range switch, a gain code). Many raw values share one
    value, so there is no inverse. Raw values below the first row give NaN, and values
    past the last row give NaN unless ``extrapolate`` is true (then the last row holds).
    """

    kind: Literal["lookup"]
    table: tuple[tuple[float, float], ...] = Field(
        min_length=1, description="[raw, value] rows, raw strictly increasing."
    )
    extrapolate: bool = Field(default=False, description="Hold the last row beyond the table.")
    upper: float | None = Field(
        default=None, description="Exclusive upper bound of the last row (default: its raw)."
    )

    @field_validator("table")
    @classmethod
    def _monotonic(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return _check_table(value)

    @property
    def invertible(self) -> bool:
        """Never: many raw values share one value."""
        return False

    def apply(self, raw: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Look every raw value up at once (``searchsorted``)."""
        import numpy as np

        x = _as_array(raw)
        xs = np.array([r[0] for r in self.table])
        ys = np.array([r[1] for r in self.table])
        index = np.searchsorted(xs, x, side="right") - 1
        out = ys[np.clip(index, 0, len(ys) - 1)]
        bad = (index < 0) | np.isnan(x)
        if not self.extrapolate:
            bad |= (x > xs[-1]) if self.upper is None else (x >= self.upper)
        return np.where(bad, np.nan, out)

    def inverse(self, value: npt.ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Always raises: a step lookup maps many raw values to one value."""
        raise CalibrationError("lookup calibration maps many raw values to one; no inverse")


def _interp(
    x: np.ndarray[Any, np.dtype[np.float64]],
    xs: tuple[float, ...],
    ys: tuple[float, ...],
    extrapolate: bool,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    import numpy as np

    out: np.ndarray[Any, np.dtype[np.float64]] = np.interp(x, xs, ys)
    if extrapolate:
        lo = ys[0] + (x - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
        hi = ys[-1] + (x - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        out = np.where(x < xs[0], lo, np.where(x > xs[-1], hi, out))
    else:
        out = np.where((x < xs[0]) | (x > xs[-1]), np.nan, out)
    return out


Calibration = Annotated[
    IdentityCalibration
    | LinearCalibration
    | PolynomialCalibration
    | PiecewiseLinearCalibration
    | LookupCalibration,
    Field(discriminator="kind"),
]
"""Any calibration, told apart by its ``kind``."""
