"""``run.log``: structlog JSON lines, every line bound to the run (seed 003).

Each line is one JSON object with ``timestamp`` (ISO-8601 UTC), ``level`` (``DEBUG`` /
``INFO`` / ``WARNING`` / ``ERROR``), ``event`` and ``run_id``; ``operator_id`` is bound
for the whole run (:meth:`RunLog.bind_run`), ``procedure_id`` by the conductor's logger
(:meth:`RunLog.bind`) and ``step_id`` / ``step_kind`` by the method executor while a step
runs (:func:`log_context`, which reaches every line written from that task). The file is
line-buffered and not fsynced per line: a hard kill may lose the last lines, which is why
``events.sqlite`` is the authoritative end-of-run record. The logger is independent of
structlog's global configuration, so the application's own logging is left alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, TextIO, cast

__all__ = ["RunLog", "log_context"]

# Values bound by :func:`log_context`. A context variable, not a global: a step's lines
# carry its ``step_id`` while a worker thread logging at the same moment does not
# (asyncio tasks and ``to_thread`` calls started inside the block inherit it).
_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("capa_run_log_context", default=None)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind ``values`` to every ``run.log`` line written from this task while the block runs.

    Nested blocks add to (and may override) the outer values; leaving a block restores
    them. Explicit keyword arguments of a log call win over bound values. The method
    executor binds ``step_id`` and ``step_kind`` this way (seed 003).
    """
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **values})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _upper_level(_logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    level = str(event_dict.get("level", method_name))
    event_dict["level"] = "WARNING" if level.lower() == "warn" else level.upper()
    return event_dict


class _LineFile:
    """A line-buffered text file whose writes after :meth:`close` are dropped, not errors.

    A late log call from a component still shutting down must never raise into it, and
    neither may a log call on a full disk: a logging call is not the place a run should
    fail. The first write error is reported once on stderr (the run's outcome reports the
    disk itself) and later lines are counted in :attr:`lost_lines`.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8", buffering=1)
        self.error: OSError | None = None
        self.lost_lines = 0

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
            sys.stderr.write(f"capa: warning: cannot write {self._path}: {exc}\n")
        self.lost_lines += 1

    def write(self, text: str) -> None:
        with self._lock:
            if self._file is None:
                return
            if self.error is not None:
                self.lost_lines += 1
                return
            try:
                self._file.write(text)
            except OSError as exc:
                self._failed(exc)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None and self.error is None:
                try:
                    self._file.flush()
                except OSError as exc:
                    self._failed(exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    self._failed(exc)
                self._file = None


class _MergeBound:
    """structlog processor: adds run-wide and task-scoped values a call did not pass."""

    def __init__(self) -> None:
        self.run_values: dict[str, Any] = {}

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for source in (self.run_values, _CONTEXT.get() or {}):
            for key, value in source.items():
                event_dict.setdefault(key, value)
        return event_dict


class RunLog:
    """The bundle's ``run.log`` and a structlog logger writing to it.

    Args:
        path: the ``run.log`` file (appended to if it exists).
        run_id: bound to every line.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        import structlog

        self.path = path
        self.run_id = run_id
        self._file = _LineFile(path)
        self._bound = _MergeBound()
        processors: list[Any] = [
            self._bound,
            structlog.processors.add_log_level,
            _upper_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str, sort_keys=False),
        ]
        self.logger: Any = structlog.wrap_logger(
            structlog.WriteLogger(cast(TextIO, self._file)),  # duck-typed write/flush
            processors=processors,
            cache_logger_on_first_use=False,
        ).bind(run_id=run_id)

    def bind(self, **values: Any) -> Any:
        """A logger for this file with extra bound values (``procedure_id``, ``step_id``)."""
        return self.logger.bind(**values)

    def bind_run(self, **values: Any) -> None:
        """Bind values (``operator_id``) to every later line of this file, from any logger.

        Unlike :meth:`bind`, loggers handed out before the call carry them too.
        """
        # Replaced, not updated: a logging thread may be iterating the old mapping.
        self._bound.run_values = {**self._bound.run_values, **values}

    def close(self) -> None:
        """Flush and close the file; later log calls are dropped silently."""
        self._file.close()
