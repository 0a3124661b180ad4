"""Signal shapes of the ``capa.sim.signals`` adapter, evaluated on whole time vectors.

Each model is one ``kind`` of signal; :func:`evaluate` returns a numpy column for a
vector of times (seconds since sampling started), so block mode produces a block of
samples in a handful of array operations rather than a Python loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from capa.components.model import MAX_DURATION_S, ConfigModel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ConstantSignal",
    "FollowSignal",
    "NoiseSignal",
    "RampSignal",
    "SignalSpec",
    "SineSignal",
    "StepSignal",
    "evaluate",
]


class _Signal(ConfigModel):
    unit: str = Field("", description="Unit of the field, e.g. degC, V, kW/m2.")
    noise_sigma: float = Field(0.0, ge=0, description="Gaussian noise added to the signal.")


class ConstantSignal(_Signal):
    """A constant value (the initial value of a writable field)."""

    kind: Literal["constant"] = "constant"
    value: float = 0.0


class SineSignal(_Signal):
    """``offset + amplitude * sin(2π t / period_s + phase)``."""

    kind: Literal["sine"] = "sine"
    offset: float = 0.0
    amplitude: float = 1.0
    period_s: float = Field(1.0, gt=0, le=MAX_DURATION_S)
    phase_deg: float = 0.0


class RampSignal(_Signal):
    """``start + rate_per_s * t``."""

    kind: Literal["ramp"] = "ramp"
    start: float = 0.0
    rate_per_s: float = 1.0


class StepSignal(_Signal):
    """``before`` until ``at_s`` seconds, ``after`` from then on."""

    kind: Literal["step"] = "step"
    before: float = 0.0
    after: float = 1.0
    at_s: float = Field(1.0, ge=0, le=MAX_DURATION_S)


class NoiseSignal(_Signal):
    """Gaussian noise around ``mean`` (seeded by the device's ``seed``)."""

    kind: Literal["noise"] = "noise"
    mean: float = 0.0
    sigma: float = Field(1.0, ge=0)


class FollowSignal(_Signal):
    """First-order lag towards ``gain * source + offset``.

    ``source`` is another field of the same device or, failing that, a channel of the run
    (so a simulated heat-flux gauge can follow a heater on another device). ``tau_s = 0``
    follows instantly. Before the source has a value the signal holds ``initial``.
    """

    kind: Literal["follow"] = "follow"
    source: str
    gain: float = 1.0
    offset: float = 0.0
    tau_s: float = Field(0.0, ge=0, le=MAX_DURATION_S)
    initial: float = 0.0


SignalSpec = Annotated[
    ConstantSignal | SineSignal | RampSignal | StepSignal | NoiseSignal | FollowSignal,
    Field(discriminator="kind"),
]
"""One field's signal; the ``kind`` key selects the shape."""


def evaluate(
    spec: ConstantSignal | SineSignal | RampSignal | StepSignal | NoiseSignal,
    t_s: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Values of a stateless signal at times ``t_s`` (follow signals are stateful)."""
    import numpy as np

    if isinstance(spec, ConstantSignal):
        out = np.full(t_s.shape, spec.value, dtype=np.float64)
    elif isinstance(spec, SineSignal):
        phase = np.deg2rad(spec.phase_deg)
        out = spec.offset + spec.amplitude * np.sin(2 * np.pi * t_s / spec.period_s + phase)
    elif isinstance(spec, RampSignal):
        out = spec.start + spec.rate_per_s * t_s
    elif isinstance(spec, StepSignal):
        out = np.where(t_s < spec.at_s, spec.before, spec.after).astype(np.float64)
    else:
        out = rng.normal(spec.mean, spec.sigma, t_s.shape)
    if spec.noise_sigma:
        out = out + rng.normal(0.0, spec.noise_sigma, t_s.shape)
    return out
