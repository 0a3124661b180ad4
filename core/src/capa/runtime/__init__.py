"""The runtime: workers, pool, conductor, channel pipeline and headless runs (seed 004).

The names below are the runtime's public surface; everything else lives in the
submodules (``capa.runtime.worker``, ``.pipeline``, ``.monitors`` ...). Importing this
package loads numpy and pyarrow, so only ``capa run`` and embedding code import it.
"""

from capa.errors import (
    ConductorStateError,
    PoolStateError,
    ResourceConflict,
    RunnerStateError,
    UnknownDeviceError,
    WorkerStateError,
)
from capa.runtime.conductor import Conductor, ConductorConfig
from capa.runtime.diagnostics import RUNTIME_VERSION, runtime_diagnostics
from capa.runtime.headless import run_headless
from capa.runtime.manual import ManualClient
from capa.runtime.plan import RunPlan
from capa.runtime.pool import WorkerPool
from capa.runtime.results import HeadlessResult, RunResult
from capa.runtime.session import RealRunSession, RunSession
from capa.runtime.signals import install_sigint_handler
from capa.runtime.state import ConductorState, RunOutcome, WorkerState

__all__ = [
    "RUNTIME_VERSION",
    "Conductor",
    "ConductorConfig",
    "ConductorState",
    "ConductorStateError",
    "HeadlessResult",
    "ManualClient",
    "PoolStateError",
    "RealRunSession",
    "ResourceConflict",
    "RunOutcome",
    "RunPlan",
    "RunResult",
    "RunSession",
    "RunnerStateError",
    "UnknownDeviceError",
    "WorkerPool",
    "WorkerState",
    "WorkerStateError",
    "install_sigint_handler",
    "run_headless",
    "runtime_diagnostics",
]
