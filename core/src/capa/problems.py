"""Problems: what validation and preflight report instead of raising."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Problem", "Severity"]


class Severity(enum.StrEnum):
    """How serious a problem is. Only ``error`` refuses a run or fails a validation."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of validation or preflight.

    Attributes:
        severity: error, warning or info.
        code: stable dotted identifier scripts can match on (``channel.device_unknown``).
        path: location inside the configuration (``devices[1].params.port``), or ``""``.
        message: one human sentence explaining the problem and, where possible, the fix.
        source: the file the problem was found in, or ``""`` when not file-based.
        line: line number in ``source`` where the loader can tell, else ``None``.
    """

    severity: Severity
    code: str
    path: str
    message: str
    source: str = ""
    line: int | None = None

    @property
    def is_error(self) -> bool:
        """True for error severity, the only severity that blocks."""
        return self.severity is Severity.ERROR

    def location(self) -> str:
        """``file:line: path`` as far as each part is known, for one-line messages."""
        where = self.source
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        return where

    def __str__(self) -> str:
        where = self.location()
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.message} [{self.code}]"
