"""A small fake NI gRPC Device Server (NI-DAQmx service) on 127.0.0.1, for conformance tests.

It implements, with the stubs ``nidaqmx`` ships (``nidaqmx._stubs``), exactly the RPCs the
capa-nidaq backend makes through ``nidaqmx``; every other RPC keeps the generated
servicer's behaviour and fails with ``UNIMPLEMENTED``. Every RPC received is logged in
``calls`` so tests can check which nidaqmx calls went over the wire.

The simulated board: a sample clock per task (rate coerced to a 100 MHz timebase
divisor), a finite input buffer (reading too late is an overrun, DAQmx error -200279),
and a deterministic signal: the sample with index ``k`` on channel ``i`` reads
``k * 10 + i`` so tests can check that no sample was skipped or repeated.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import session_pb2
from nidaqmx._stubs import nidaqmx_pb2 as pb
from nidaqmx._stubs import nidaqmx_pb2_grpc as pb_grpc

# Attribute ids (as nidaqmx sends them)
SYS_VERSION = {0x1272: 24, 0x1923: 5, 0x2F22: 0}  # major, minor, update
SYS_DEV_NAMES = 0x193B
DEV_PRODUCT_TYPE = 0x631
DEV_SERIAL_NUM = 0x632
READ_NUM_CHANS = 0x217B
READ_AVAIL_SAMP_PER_CHAN = 0x1223
TIMING_SAMP_CLK_RATE = 0x1344
TASK_NAME = 0x1276
CONTINUOUS = 10123

ERR_PHYS_CHAN_MISSING = -200170
ERR_OVERWRITTEN = -200279
ERR_TIMEOUT = -200284
ERR_DEVICE_GONE = -201003
ERR_TASK_NOT_FOUND = -200088
ERRORS = {
    ERR_PHYS_CHAN_MISSING: "Physical channel specified does not exist on this device.",
    ERR_OVERWRITTEN: "Attempted to read samples that are no longer available. The "
    "requested sample was previously available, but has since been overwritten.",
    ERR_TIMEOUT: "Wait Until Done did not indicate all samples were acquired in time.",
    ERR_DEVICE_GONE: "Device cannot be accessed. Possible causes: the device is removed.",
    ERR_TASK_NOT_FOUND: "Task specified is invalid or does not exist.",
}


@dataclass
class FakeTask:
    """State of one task on the fake server."""

    name: str
    channels: list[tuple[str, str, str]] = field(default_factory=list)  # phys, name, kind
    rate: float | None = None
    buffer: int = 0
    started: float | None = None
    index: int = 0


@dataclass
class FakeBoard:
    """Devices the server pretends to have, and faults to inject."""

    devices: dict[str, tuple[str, int, int]] = field(
        default_factory=lambda: {
            "cDAQ1Mod1": ("NI 9213", 0x1A2B3C, 16),
            "cDAQ1Mod2": ("NI 9205", 0x0BADF00D, 32),
        }
    )
    overrun_at_read: int | None = None  # the Nth ReadAnalogF64 reports an overrun
    lose_device_at_read: int | None = None


class FakeNiDaqmx(pb_grpc.NiDAQmxServicer):
    """The NI-DAQmx service, the part capa-nidaq uses."""

    def __init__(self, board: FakeBoard) -> None:
        self.board = board
        self.tasks: dict[str, FakeTask] = {}
        self.calls: list[str] = []
        self.reads = 0
        self._lock = threading.Lock()
        self._ids = 0

    # ------------------------------------------------------------------ helpers
    def _log(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)

    @staticmethod
    def _fail(context: grpc.ServicerContext, code: int) -> None:
        context.set_trailing_metadata((("ni-error", str(code)),))
        context.abort(grpc.StatusCode.UNKNOWN, ERRORS.get(code, f"error {code}"))

    def _task(self, session: session_pb2.Session, context: grpc.ServicerContext) -> FakeTask:
        task = self.tasks.get(session.name)
        if task is None:
            self._fail(context, ERR_TASK_NOT_FOUND)
        assert task is not None
        return task

    # ------------------------------------------------------------------ system / device
    def GetSystemInfoAttributeUInt32(self, request, context):
        self._log("GetSystemInfoAttributeUInt32")
        if request.attribute_raw not in SYS_VERSION:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"attr {request.attribute_raw:#x}")
        return pb.GetSystemInfoAttributeUInt32Response(value=SYS_VERSION[request.attribute_raw])

    def GetSystemInfoAttributeString(self, request, context):
        self._log("GetSystemInfoAttributeString")
        if request.attribute_raw != SYS_DEV_NAMES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"attr {request.attribute_raw:#x}")
        return pb.GetSystemInfoAttributeStringResponse(value=", ".join(self.board.devices))

    def GetDeviceAttributeString(self, request, context):
        self._log("GetDeviceAttributeString")
        dev = self.board.devices.get(request.device_name)
        if dev is None or request.attribute_raw != DEV_PRODUCT_TYPE:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown device or attribute")
        return pb.GetDeviceAttributeStringResponse(value=dev[0])

    def GetDeviceAttributeUInt32(self, request, context):
        self._log("GetDeviceAttributeUInt32")
        dev = self.board.devices.get(request.device_name)
        if dev is None or request.attribute_raw != DEV_SERIAL_NUM:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown device or attribute")
        return pb.GetDeviceAttributeUInt32Response(value=dev[1])

    def GetErrorString(self, request, context):
        self._log("GetErrorString")
        return pb.GetErrorStringResponse(error_string=ERRORS.get(request.error_code, ""))

    # ------------------------------------------------------------------ task setup
    def CreateTask(self, request, context):
        self._log("CreateTask")
        with self._lock:
            self._ids += 1
            name = request.session_name or f"_unnamedTask<{self._ids}>"
        self.tasks[name] = FakeTask(name)
        return pb.CreateTaskResponse(
            task=session_pb2.Session(name=name), new_session_initialized=True
        )

    def _add_channel(self, request, context, kind: str) -> None:
        task = self._task(request.task, context)
        dev, _, line = request.physical_channel.partition("/")
        spec = self.board.devices.get(dev)
        if spec is None or not line.startswith("ai") or int(line[2:]) >= spec[2]:
            self._fail(context, ERR_PHYS_CHAN_MISSING)
        task.channels.append((request.physical_channel, request.name_to_assign_to_channel, kind))

    def CreateAIThrmcplChan(self, request, context):
        self._log("CreateAIThrmcplChan")
        self._add_channel(request, context, "thermocouple")
        return pb.CreateAIThrmcplChanResponse()

    def CreateAIVoltageChan(self, request, context):
        self._log("CreateAIVoltageChan")
        self._add_channel(request, context, "voltage")
        return pb.CreateAIVoltageChanResponse()

    def GetTaskAttributeString(self, request, context):
        self._log("GetTaskAttributeString")
        task = self._task(request.task, context)
        if request.attribute_raw != TASK_NAME:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"attr {request.attribute_raw:#x}")
        return pb.GetTaskAttributeStringResponse(value=task.name)

    def CfgSampClkTiming(self, request, context):
        self._log("CfgSampClkTiming")
        task = self._task(request.task, context)
        if request.sample_mode_raw != CONTINUOUS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake server: continuous only")
        # Coerce to what a 100 MHz timebase divides into, as a board does.
        task.rate = 1e8 / round(1e8 / request.rate)
        task.buffer = request.samps_per_chan
        return pb.CfgSampClkTimingResponse()

    def GetTimingAttributeDouble(self, request, context):
        self._log("GetTimingAttributeDouble")
        task = self._task(request.task, context)
        if request.attribute_raw != TIMING_SAMP_CLK_RATE or task.rate is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"attr {request.attribute_raw:#x}")
        return pb.GetTimingAttributeDoubleResponse(value=task.rate)

    def GetReadAttributeUInt32(self, request, context):
        self._log("GetReadAttributeUInt32")
        task = self._task(request.task, context)
        if request.attribute_raw == READ_NUM_CHANS:
            return pb.GetReadAttributeUInt32Response(value=len(task.channels))
        if request.attribute_raw == READ_AVAIL_SAMP_PER_CHAN:
            return pb.GetReadAttributeUInt32Response(value=min(self._produced(task), 2**32 - 1))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"attr {request.attribute_raw:#x}")
        return None

    def StartTask(self, request, context):
        self._log("StartTask")
        task = self._task(request.task, context)
        task.started, task.index = time.monotonic(), 0
        return pb.StartTaskResponse()

    def StopTask(self, request, context):
        self._log("StopTask")
        self._task(request.task, context).started = None
        return pb.StopTaskResponse()

    def ClearTask(self, request, context):
        self._log("ClearTask")
        self.tasks.pop(request.task.name, None)
        return pb.ClearTaskResponse()

    # ------------------------------------------------------------------ reads
    def _produced(self, task: FakeTask) -> int:
        if task.started is None or task.rate is None:
            return 0
        return int((time.monotonic() - task.started) * task.rate) - task.index

    def ReadAnalogF64(self, request, context):
        self._log("ReadAnalogF64")
        task = self._task(request.task, context)
        with self._lock:
            self.reads += 1
            nth = self.reads
        n, nch = request.num_samps_per_chan, len(task.channels)
        if nth == self.board.lose_device_at_read:
            return pb.ReadAnalogF64Response(status=ERR_DEVICE_GONE)
        if task.rate is None:  # on demand: one sample now
            task.index += 1
            return pb.ReadAnalogF64Response(
                read_array=[(task.index - 1) * 10 + i for i in range(nch)], samps_per_chan_read=1
            )
        if task.started is None:
            self._fail(context, ERR_TASK_NOT_FOUND)
        if nth == self.board.overrun_at_read:
            task.index -= task.buffer * 2  # pretend the reader fell far behind
        if self._produced(task) > task.buffer:
            return pb.ReadAnalogF64Response(status=ERR_OVERWRITTEN, samps_per_chan_read=0)
        deadline = time.monotonic() + request.timeout
        while self._produced(task) < n:
            if time.monotonic() > deadline or task.started is None:
                return pb.ReadAnalogF64Response(status=ERR_TIMEOUT, samps_per_chan_read=0)
            time.sleep(min(0.005, max(0.0, (n - self._produced(task)) / task.rate)))
        k = np.arange(task.index, task.index + n, dtype=np.float64)
        data = (k[None, :] * 10 + np.arange(nch)[:, None]).ravel()  # group by channel
        task.index += n
        return pb.ReadAnalogF64Response(read_array=data, samps_per_chan_read=n)


class FakeServer:
    """The fake service on an ephemeral 127.0.0.1 port (``with FakeServer() as s``)."""

    def __init__(self, board: FakeBoard | None = None) -> None:
        self.service = FakeNiDaqmx(board or FakeBoard())
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_NiDAQmxServicer_to_server(self.service, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait()


def main() -> None:
    """Run the fake server until killed; prints ``host:port`` (for `capa run` tests)."""
    import sys

    board = FakeBoard()
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        setattr(board, key, int(value))
    with FakeServer(board) as server:
        print(server.address, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
