"""Two-stage stop on SIGINT (and SIGTERM) for headless runs (seeds 000 / 001).

First signal: the run stops gracefully — the procedure is asked to stop, the writer
drains, the bundle is sealed, and ``capa run`` exits 1. Second signal: the process exits
at once (130 after SIGINT, 143 after SIGTERM) without finalizing; whatever the writer had
flushed stays on disk for ``capa finalize``. SIGTERM is handled like the first Ctrl-C so
that ``kill <pid>``, systemd and CI runners get a sealed bundle too (the seed system left
SIGTERM unhandled).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import anyio

__all__ = ["install_sigint_handler"]

_MESSAGES = {
    signal.SIGINT: "SIGINT received — initiating graceful stop (Ctrl-C again to force)",
    signal.SIGTERM: "SIGTERM received — initiating graceful stop (send again to force)",
}


def install_sigint_handler(
    stop_event: anyio.Event, *, on_first: Callable[[str], None] | None = None
) -> Callable[[], None]:
    """Install the two-stage handler on the running asyncio loop; returns an uninstaller.

    Args:
        stop_event: set by the first SIGINT or SIGTERM.
        on_first: called with the signal name on the first signal (e.g. to record why).
    """
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def handle(sig: signal.Signals) -> None:
        if received:
            # Second signal: no finalize, no cleanup — the operator wants out now.
            sys.stderr.write(f"\n{sig.name} received again — exiting without finalizing\n")
            sys.stderr.flush()
            os._exit(128 + int(sig))
        received.append(sig)
        sys.stderr.write(f"\n{_MESSAGES[sig]}\n")
        sys.stderr.flush()
        if on_first is not None:
            on_first(sig.name)
        stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)

    def uninstall() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return uninstall
