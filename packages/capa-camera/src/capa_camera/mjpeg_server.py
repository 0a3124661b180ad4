"""A small MJPEG-over-HTTP server streaming the ``sim://`` pattern (a network camera stand-in).

It speaks what IP cameras speak: ``multipart/x-mixed-replace`` with one JPEG per part. Each
frame's number is its time slot since ``epoch`` (``floor((t - epoch) * fps)``), so a
server restarted with the same epoch keeps numbering where the previous one would have
been — tests can check frame order across a reconnect.

Run by hand: ``python -m capa_camera.mjpeg_server --port 8081`` then
``source = "http://127.0.0.1:8081/stream.mjpg"``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from capa_camera.pattern import draw_frame

__all__ = ["MjpegServer"]

BOUNDARY = "capaframe"


class MjpegServer:
    """Streams the test pattern to every client on ``http://host:port/<anything>``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        width: int = 160,
        height: int = 120,
        fps: float = 10.0,
        epoch_ns: int | None = None,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.epoch_ns = time.monotonic_ns() if epoch_ns is None else epoch_ns
        self.frames_sent = 0
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/stream.mjpg"
        self._thread: threading.Thread | None = None

    def start(self) -> MjpegServer:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="mjpeg"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every client off at once (a camera losing power)."""
        self._stopping.set()
        with self._lock:
            for sock in self._clients:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _frame(self, slot: int) -> bytes:
        import cv2

        t_s = slot / self.fps
        frame = draw_frame(slot, self.width, self.height, t_s, 40.0)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        return bytes(buf.tobytes())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests and benchmarks read stdout."""

            def do_GET(self) -> None:
                """Stream frames until the client goes or the server stops."""
                with server._lock:
                    server._clients.add(self.connection)
                try:
                    self.send_response(200)
                    self.send_header(
                        "Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}"
                    )
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self._stream()
                except OSError:
                    pass  # client gone or server stopping
                finally:
                    with server._lock:
                        server._clients.discard(self.connection)

            def _stream(self) -> None:
                period_ns = 1e9 / server.fps
                slot = int((time.monotonic_ns() - server.epoch_ns) / period_ns) + 1
                while not server._stopping.is_set():
                    due = server.epoch_ns + slot * period_ns
                    delay = (due - time.monotonic_ns()) / 1e9
                    if delay > 0 and server._stopping.wait(delay):
                        return
                    jpeg = server._frame(slot)
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )
                    self.wfile.flush()
                    server.frames_sent += 1
                    slot += 1

        return Handler


def main() -> None:
    """``python -m capa_camera.mjpeg_server [--port N] [--fps F]``: serve until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    args = parser.parse_args()
    server = MjpegServer(
        args.host, args.port, width=args.width, height=args.height, fps=args.fps
    ).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
