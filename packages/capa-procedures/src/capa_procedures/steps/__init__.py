"""The built-in method-step kinds (ARCHITECTURE.md 3.3), registered by the plugin."""

from __future__ import annotations

import capa
from capa_procedures.steps.prompt import PromptStep
from capa_procedures.steps.setpoints import HoldStep, RampStep, SetpointStep
from capa_procedures.steps.shutdown import SafeShutdownStep
from capa_procedures.steps.waiting import AcquireStep, WaitStep

__all__ = [
    "BUILTIN_STEPS",
    "AcquireStep",
    "HoldStep",
    "PromptStep",
    "RampStep",
    "SafeShutdownStep",
    "SetpointStep",
    "WaitStep",
]

BUILTIN_STEPS: tuple[type[capa.Step], ...] = (
    SetpointStep,
    HoldStep,
    RampStep,
    WaitStep,
    PromptStep,
    AcquireStep,
    SafeShutdownStep,
)
"""Every step kind capa-procedures provides, in documentation order."""
