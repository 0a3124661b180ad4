"""``capa run CONFIG --serve [HOST:PORT]``: the Run page for a run ``capa run`` owns.

The console is served on its own thread and event loop; it watches the run through an
observing session attached before the conductor starts, and may only stop the run
(gracefully) and answer its prompts. It closes when ``capa run`` ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import capa
from capa_gui.rig import Rig
from capa_gui.server import Served, bind, is_loopback, make_server, serve_in_thread

__all__ = ["WatchConsole", "parse_address"]


def parse_address(address: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``:PORT`` or ``[IPv6]:PORT`` → ``(host, port or None)``.

    Raises:
        ConfigError: the port is not a number.
    """
    text = address.strip()
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    host = host or "127.0.0.1"
    if not port:
        return host, None
    if not port.isdigit():
        raise capa.ConfigError(f"--serve {address!r}: the port must be a number (HOST:PORT)")
    return host, int(port)


class WatchConsole:
    """A read-only console serving one headless run (see the hookspec ``capa_live_console``)."""

    def __init__(self, address: str, runs_root: Path, plan: Any) -> None:
        host, port = parse_address(address)
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise capa.ConfigError(f"--serve {address}: cannot listen: {exc.strerror}") from None
        if not is_loopback(host):
            print(
                f"capa: warning: console listening on {host}: anyone who can reach this "
                "machine and has the token can stop the run",
                file=sys.stderr,
            )
        self.rig = Rig(None, runs_root, read_only=True)
        self.rig.attach_plan(plan)
        self.served: Served = make_server(self.rig, sock)
        self.url = self.served.url
        serve_in_thread(self.served, sock)

    def attach(self, conductor: Any) -> None:
        """Watch ``conductor`` (called on the run's loop before it runs)."""
        self.rig.attach(conductor)

    def finished(self, result: Any) -> None:
        """Show how the run ended."""
        self.rig.on_attached_result(result)

    def close(self) -> None:
        """Stop serving."""
        self.served.stop()
