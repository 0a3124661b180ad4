"""The backend seam between the ``nidaq.task`` adapter and a DAQ (real or simulated).

A backend owns one DAQmx task. All its methods block and are called from one thread at
a time (the adapter's reader thread); none of them is a coroutine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from capa import DeviceError

if TYPE_CHECKING:
    from collections.abc import Callable

    from capa_nidaq.params import NidaqParams

__all__ = ["DaqBackend", "DeviceLostError", "OverrunError", "make_backend"]

OVERWRITE_ERROR_CODES = frozenset({-200279, -200277})
"""DAQmx errors meaning samples were overwritten in the input buffer before being read
(``SamplesNoLongerAvailable`` and its ``InvalidAttributeValue`` cousin for reads)."""

DEVICE_GONE_ERROR_CODES = frozenset({-201003, -200324, -88705, -88709, -50405})
"""DAQmx errors meaning the device went away (removed, reset, chassis unreachable)."""


class OverrunError(DeviceError):
    """The driver overwrote samples before they were read; acquisition must restart."""

    def __init__(self, message: str, samples_lost: int | None = None) -> None:
        super().__init__(message)
        self.samples_lost = samples_lost


class DeviceLostError(DeviceError):
    """The device stopped existing for the driver (unplugged, chassis lost)."""


class DaqBackend(Protocol):
    """One DAQmx task on a real or simulated device."""

    def open(self) -> None:
        """Create the task and its channels (no timing yet)."""

    def start(self, latest: Callable[[str], float | None] | None = None) -> float:
        """Configure timing (hardware mode) and start; returns the actual sample rate.

        ``latest`` gives the simulated backend run channels to follow.
        """

    def read_block(self, out: Any, timeout_s: float) -> int:
        """Fill ``out`` (channels x samples, float64) with the next samples; count read.

        Raises:
            OverrunError: samples were lost before they were read.
            DeviceLostError: the device is gone.
        """

    def read_one(self, out: Any, timeout_s: float) -> None:
        """Polled mode: one on-demand sample per channel into ``out`` (1-D float64)."""

    def available(self) -> int:
        """Samples per channel waiting in the driver's buffer (hardware mode)."""

    def buffer_size(self) -> int:
        """Input buffer size per channel, in samples (hardware mode)."""

    def stop(self) -> None:
        """Stop the task (idempotent)."""

    def close(self) -> None:
        """Stop and clear the task (idempotent)."""


def make_backend(name: str, params: NidaqParams, clock_ns: Callable[[], int]) -> DaqBackend:
    """The simulated backend for ``sim://``, the nidaqmx one otherwise."""
    if params.simulated:
        from capa_nidaq.sim import SimBackend

        return SimBackend(name, params, clock_ns)
    from capa_nidaq.ni import NiBackend

    return NiBackend(name, params)
