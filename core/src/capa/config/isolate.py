"""Running plugin coroutines that may block (handshake, discover) off the event loop.

Adapters built on blocking libraries (pyserial, nidaqmx, OpenCV) may block inside their
coroutines, because the runtime normally runs them on their resource's worker thread.
Validation and discovery have no workers, so each such call gets a daemon thread of its
own with its own event loop: the caller's loop stays responsive, the timeout holds even
when a driver call never returns, and a hung driver cannot keep the process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["call_in_thread"]

T = TypeVar("T")


async def call_in_thread(fn: Callable[..., Awaitable[T]], *args: Any, timeout_s: float) -> T:
    """Await ``fn(*args)`` on a private daemon thread; :class:`TimeoutError` after ``timeout_s``.

    On timeout the thread is left to finish on its own (a blocked driver call cannot be
    interrupted); being a daemon, it never delays the exit of the process.
    """
    import anyio
    import anyio.to_thread

    outcome: list[tuple[bool, Any]] = []

    async def call() -> T:
        return await fn(*args)

    def target() -> None:
        try:
            outcome.append((True, anyio.run(call)))
        except Exception as exc:  # handed to the awaiting caller below
            outcome.append((False, exc))
        except BaseException as exc:  # a plugin's SystemExit must not end the command
            outcome.append((False, RuntimeError(f"{type(exc).__name__}: {exc}")))

    name = getattr(fn, "__qualname__", "plugin-call")
    thread = threading.Thread(target=target, name=f"capa:{name}", daemon=True)
    thread.start()
    # join() with a timeout on anyio's worker: that worker is back within timeout_s
    # whatever the plugin does, so no non-daemon thread is ever left blocked.
    await anyio.to_thread.run_sync(thread.join, timeout_s, abandon_on_cancel=True)
    if not outcome:
        raise TimeoutError(f"{name} did not return within {timeout_s:g} s")
    ok, value = outcome[0]
    if ok:
        result: T = value
        return result
    raise value
