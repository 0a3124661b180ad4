"""The real backend: one NI-DAQmx task through the ``nidaqmx`` package.

``nidaqmx`` is imported here only, when a real device is opened, discovered or
handshaken. With ``grpc_server`` set, the task runs on an NI gRPC Device Server instead of
the local driver (the same Python calls go over gRPC). Every nidaqmx call this module
makes is exercised by the conformance tests against a fake gRPC device server.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from capa import DeviceError
from capa_nidaq.backend import (
    DEVICE_GONE_ERROR_CODES,
    OVERWRITE_ERROR_CODES,
    DeviceLostError,
    OverrunError,
)
from capa_nidaq.params import NidaqParams, ThermocoupleChannel, VoltageChannel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["DRIVER_MISSING", "DriverMissingError", "NiBackend", "grpc_options", "system"]

DRIVER_MISSING = "NI-DAQmx driver not installed"


class DriverMissingError(DeviceError):
    """Neither the NI-DAQmx driver nor the ``nidaqmx`` package is available."""


def grpc_options(server: str | None) -> Any:
    """``nidaqmx.GrpcSessionOptions`` for ``host:port``, or ``None`` for the local driver."""
    if not server:
        return None
    import grpc  # type: ignore[import-untyped]
    import nidaqmx

    return nidaqmx.GrpcSessionOptions(grpc.insecure_channel(server), session_name="")


@contextlib.contextmanager
def system(server: str | None) -> Iterator[Any]:
    """``nidaqmx.system.System`` (local driver, or the gRPC server at ``server``).

    A context manager: the gRPC channel (if any) is closed on exit.

    Raises:
        DriverMissingError: no nidaqmx package, or no NI-DAQmx driver on this machine.
    """
    try:
        import nidaqmx.system
    except ImportError as exc:
        raise DriverMissingError(f"{DRIVER_MISSING} (python package nidaqmx: {exc})") from None
    options = grpc_options(server)
    if options is not None:
        try:
            yield nidaqmx.system.System.remote(options)
        finally:
            options.grpc_channel.close()
        return
    try:
        sys_ = nidaqmx.system.System.local()
        _ = sys_.driver_version  # the first call that needs the driver library
    except nidaqmx.errors.DaqNotFoundError:
        raise DriverMissingError(DRIVER_MISSING) from None
    yield sys_


def _constants() -> Any:
    from nidaqmx import constants

    return constants


class NiBackend:
    """A DAQmx task on a real device (or an NI gRPC Device Server)."""

    def __init__(self, name: str, params: NidaqParams) -> None:
        self.name = name
        self.params = params
        self._task: Any = None
        self._reader: Any = None
        self._grpc: Any = None
        self._running = False

    def open(self) -> None:
        """Create the task and add every channel (``add_ai_*_chan``).

        Raises:
            DriverMissingError: no driver (and no gRPC server configured).
            DeviceError: the driver refused the task or a channel.
        """
        try:
            import nidaqmx
            from nidaqmx.stream_readers import AnalogMultiChannelReader
        except ImportError as exc:
            raise DriverMissingError(f"{DRIVER_MISSING} (python package nidaqmx: {exc})") from None
        c = _constants()
        self._grpc = grpc_options(self.params.grpc_server)
        try:
            self._task = nidaqmx.Task(self.params.task_name, grpc_options=self._grpc)
        except nidaqmx.errors.DaqNotFoundError:
            self.close()
            raise DriverMissingError(DRIVER_MISSING) from None
        except nidaqmx.errors.Error as exc:
            self.close()
            raise DeviceError(
                f"{self.name}: cannot create DAQmx task: {_first_line(exc)}"
            ) from None
        try:
            for ch in self.params.channels:
                if isinstance(ch, ThermocoupleChannel):
                    self._task.ai_channels.add_ai_thrmcpl_chan(
                        ch.physical_channel,
                        name_to_assign_to_channel=ch.name,
                        min_val=ch.min,
                        max_val=ch.max,
                        units=_TEMPERATURE_UNITS(c)[ch.units],
                        thermocouple_type=getattr(c.ThermocoupleType, ch.type),
                        cjc_source=_CJC(c)[ch.cjc_source],
                        cjc_val=ch.cjc_value,
                        cjc_channel=ch.cjc_channel,
                    )
                else:
                    assert isinstance(ch, VoltageChannel)
                    self._task.ai_channels.add_ai_voltage_chan(
                        ch.physical_channel,
                        name_to_assign_to_channel=ch.name,
                        terminal_config=_TERMINALS(c)[ch.terminal_config],
                        min_val=ch.min,
                        max_val=ch.max,
                        units=c.VoltageUnits.VOLTS,
                    )
            self._reader = AnalogMultiChannelReader(self._task.in_stream)
        except nidaqmx.errors.Error as exc:
            self.close()
            raise DeviceError(f"{self.name}: {_first_line(exc)}") from None

    def start(self, latest: Callable[[str], float | None] | None = None) -> float:
        """Configure the sample clock (hardware mode) and start the task.

        Returns:
            The sample rate the driver actually uses (it may coerce the request).
        """
        import nidaqmx

        c = _constants()
        task = self._require()
        timing = self.params.timing
        try:
            if timing is not None:
                task.timing.cfg_samp_clk_timing(
                    timing.sample_rate_hz,
                    sample_mode=c.AcquisitionType.CONTINUOUS,
                    samps_per_chan=timing.block_size * timing.buffer_blocks,
                )
                rate = float(task.timing.samp_clk_rate)
            else:
                rate = self.params.rate_hz
            task.start()
        except nidaqmx.errors.Error as exc:
            raise _translate(self.name, exc) from None
        self._running = True
        return rate

    def read_block(self, out: Any, timeout_s: float) -> int:
        """``read_many_sample`` straight into ``out`` (no per-sample Python)."""
        import nidaqmx

        try:
            return int(self._reader.read_many_sample(out, out.shape[1], timeout=timeout_s))
        except nidaqmx.errors.Error as exc:
            raise _translate(self.name, exc) from None

    def read_one(self, out: Any, timeout_s: float) -> None:
        """``read_one_sample``: one on-demand sample per channel."""
        import nidaqmx

        try:
            self._reader.read_one_sample(out, timeout=timeout_s)
        except nidaqmx.errors.Error as exc:
            raise _translate(self.name, exc) from None

    def available(self) -> int:
        """``in_stream.avail_samp_per_chan``."""
        return int(self._require().in_stream.avail_samp_per_chan)

    def buffer_size(self) -> int:
        """The buffer size requested from ``cfg_samp_clk_timing``."""
        timing = self.params.timing
        return timing.block_size * timing.buffer_blocks if timing else 1

    def stop(self) -> None:
        """``task.stop()``; errors of a task that is already gone are ignored."""
        if self._task is not None and self._running:
            self._running = False
            with contextlib.suppress(Exception):
                self._task.stop()

    def close(self) -> None:
        """Stop and clear the task (``task.close()``)."""
        self.stop()
        task, self._task, self._reader = self._task, None, None
        if task is not None:
            with contextlib.suppress(Exception):
                task.close()
        channel, self._grpc = self._grpc, None
        if channel is not None:
            channel.grpc_channel.close()

    def _require(self) -> Any:
        if self._task is None:
            raise DeviceError(f"{self.name}: DAQmx task is not open")
        return self._task


def _translate(name: str, exc: Exception) -> DeviceError:
    code = getattr(exc, "error_code", None)
    if code in OVERWRITE_ERROR_CODES:
        return OverrunError(f"{name}: buffer overrun (DAQmx {code}): {_first_line(exc)}")
    if code in DEVICE_GONE_ERROR_CODES:
        return DeviceLostError(f"{name}: device lost (DAQmx {code}): {_first_line(exc)}")
    return DeviceError(f"{name}: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _TEMPERATURE_UNITS(c: Any) -> dict[str, Any]:
    return {
        "degC": c.TemperatureUnits.DEG_C,
        "degF": c.TemperatureUnits.DEG_F,
        "K": c.TemperatureUnits.K,
    }


def _CJC(c: Any) -> dict[str, Any]:
    return {
        "builtin": c.CJCSource.BUILT_IN,
        "constant": c.CJCSource.CONSTANT_USER_VALUE,
        "channel": c.CJCSource.SCANNABLE_CHANNEL,
    }


def _TERMINALS(c: Any) -> dict[str, Any]:
    t = c.TerminalConfiguration
    return {
        "default": t.DEFAULT,
        "rse": t.RSE,
        "nrse": t.NRSE,
        "diff": t.DIFF,
        "pseudodiff": t.PSEUDO_DIFF,
    }
