"""Serving the console: a token, a socket, uvicorn; in the foreground or on a thread."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any

from capa_gui.app import Console, build_app
from capa_gui.rig import Rig

__all__ = ["DEFAULT_PORT", "Served", "bind", "is_loopback", "make_server"]

DEFAULT_PORT = 8765
"""Tried first; when it is taken the console takes any free port (and says which)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on ``host:port`` (``None``: the default port, else any free one).

    Raises:
        OSError: an explicitly requested port cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else [DEFAULT_PORT, 0]
    last: OSError | None = None
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.listen(64)
        sock.set_inheritable(True)
        return sock
    assert last is not None
    raise last


@dataclass
class Served:
    """A console being served: its URL, and how to stop it."""

    console: Console
    server: Any
    url: str
    thread: threading.Thread | None = None

    def stop(self) -> None:
        """Ask uvicorn to shut down (and wait for a background thread)."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)


def make_server(rig: Rig, sock: socket.socket, *, token: str | None = None) -> Served:
    """Build the console and its uvicorn server on ``sock`` (not started)."""
    import uvicorn

    token = token or secrets.token_urlsafe(24)
    console = Console(rig, token)
    app = build_app(console)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    server = uvicorn.Server(config)

    def quit_() -> None:
        server.should_exit = True

    console.on_quit = quit_
    console.stopping = lambda: bool(server.should_exit)
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}/?token={token}"
    return Served(console, server, url)


def serve_in_thread(served: Served, sock: socket.socket) -> None:
    """Run ``served`` on a daemon thread with its own event loop (``capa run --serve``)."""

    def run() -> None:
        served.server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="capa-gui-server", daemon=True)
    served.thread = thread
    thread.start()
