"""The console's web application (Starlette): pages, JSON API and the live stream (SSE).

Security: every request needs the console's token (``?token=`` in the URL printed at
start, then an HttpOnly same-site cookie, or an ``Authorization: token ...`` header).
Requests that change anything (every non-GET) also need a same-origin ``Origin``
header, so another web page the operator has open cannot drive the rig.

Push: one broadcaster task builds a frame every ``frame_period_s`` from the rig's display
bridge and hands it to every connected page through a small per-page queue; a page that
cannot keep up loses whole frames (counted), the run loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import capa
from capa_gui import review
from capa_gui.rig import Rig, RigError

__all__ = ["COOKIE", "Console", "build_app"]

COOKIE = "capa_gui_token"
STATIC = Path(str(files("capa_gui") / "static"))

Handler = Callable[[Request], Awaitable[Response]]


class TokenGate:
    """ASGI middleware: token on every request, same origin on every state change."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        supplied = (
            request.query_params.get("token")
            or _bearer(request.headers.get("authorization", ""))
            or request.cookies.get(COOKIE, "")
        )
        if not hmac.compare_digest(supplied.encode(), self.token.encode()):
            response: Response = Response(
                "capa gui: missing or wrong token; open the URL printed in the terminal\n",
                status_code=403,
                media_type="text/plain",
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and request.method not in ("GET", "HEAD"):
            problem = _cross_origin(request)
            if problem:
                await JSONResponse({"error": problem}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") else ""


def _cross_origin(request: Request) -> str | None:
    """Why a state-changing request is not same-origin, or ``None`` when it is."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is None:
        return "refused: a state-changing request needs an Origin header (same-origin only)"
    if origin != f"{request.url.scheme}://{host}":
        return f"refused: cross-origin request from {origin}"
    return None


class Console:
    """The running console: the rig, the connected pages and the broadcaster."""

    def __init__(self, rig: Rig, token: str, *, frame_period_s: float = 1 / 15) -> None:
        self.rig = rig
        self.token = token
        self.frame_period_s = frame_period_s
        self.clients: set[asyncio.Queue[str]] = set()
        self.frames_sent = 0
        self.frames_dropped = 0
        self.on_quit: Callable[[], None] | None = None
        self.on_ready: Callable[[], None] | None = None
        """Called once the server listens (and handles Ctrl-C): print the URL then."""
        self.stopping: Callable[[], bool] = lambda: False
        """True once the server is shutting down: live streams end so it need not wait."""
        self.closing = False
        self.prompt: dict[str, Any] | None = None
        self._prompt_checked = 0.0

    # ------------------------------------------------------------------ broadcast
    async def broadcaster(self) -> None:
        """Build a frame every period and offer it to every page (drop-oldest per page)."""
        while not self.closing:
            started = time.perf_counter()
            self.rig.probe_loop_lag()
            try:
                message = await self._message()
            except Exception as exc:  # a display problem must not end the console
                message = json.dumps({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
            for queue in list(self.clients):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    self.frames_dropped += 1
                queue.put_nowait(message)
            self.frames_sent += 1
            await asyncio.sleep(max(0.0, self.frame_period_s - (time.perf_counter() - started)))

    async def _message(self) -> str:
        frame = self.rig.next_frame()
        now = time.monotonic()
        if now - self._prompt_checked >= 0.4:
            self._prompt_checked = now
            self.prompt = await anyio.to_thread.run_sync(self.rig.pending_prompt)
        status = self.rig.status()
        status["health"]["frames_dropped"] = self.frames_dropped
        status["prompt"] = self.prompt
        return json.dumps({"type": "frame", **frame, "status": status}, allow_nan=False)

    async def stream(self, request: Request) -> Response:
        """Server-sent events: a snapshot first, then frames."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=4)
        snapshot = {
            "type": "snapshot",
            "meta": self.rig.meta(),
            **self.rig.frames.snapshot(),
            "status": {**self.rig.status(), "prompt": self.prompt},
        }

        async def events() -> AsyncIterator[str]:
            self.clients.add(queue)
            try:
                yield f"data: {json.dumps(snapshot, allow_nan=False)}\n\n"
                while not self.closing and not self.stopping():
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=0.5)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {message}\n\n"
            finally:
                self.clients.discard(queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _json_error(exc: Exception, status: int = 409) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _action(fn: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
    """A POST handler: JSON body in, ``{ok: true, ...}`` or ``{error}`` (409) out."""

    async def handler(request: Request) -> Response:
        body = await _body(request)
        try:
            result = await fn(body)
        except (RigError, ValueError, capa.CapaError) as exc:
            return _json_error(exc)
        return JSONResponse({"ok": True, **(result or {})})

    return handler


def _review_routes(console: Console, action: Callable[..., Handler]) -> list[Route]:
    """Catalog, one run's detail and data, integrity verification."""
    rig = console.rig

    async def runs(request: Request) -> Response:
        q = request.query_params
        try:
            rows = await anyio.to_thread.run_sync(
                lambda: review.list_runs(
                    rig.runs_root,
                    status=q.get("status") or None,
                    operator=q.get("operator") or None,
                    sample=q.get("sample") or None,
                    tag=q.get("tag") or None,
                    since=q.get("since") or None,
                )
            )
        except ValueError as exc:
            return _json_error(exc, 400)
        return JSONResponse({"runs": rows, "runs_root": str(rig.runs_root)})

    async def run_detail(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            data = await anyio.to_thread.run_sync(review.run_detail, rig.runs_root, run_id)
        except (ValueError, capa.CapaError) as exc:
            return _json_error(exc, 404)
        return JSONResponse(data)

    async def run_data(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            data = await anyio.to_thread.run_sync(review.run_series, rig.runs_root, run_id)
        except (ValueError, capa.CapaError) as exc:
            return _json_error(exc, 404)
        return JSONResponse(data)

    async def verify(body: dict[str, Any]) -> dict[str, Any]:
        run_id = str(body.get("run_id", ""))
        return await anyio.to_thread.run_sync(review.verify, rig.runs_root, run_id)

    return [
        Route("/api/review/runs", runs),
        Route("/api/review/run/{run_id}", run_detail),
        Route("/api/review/run/{run_id}/data", run_data),
        Route("/api/review/verify", action(verify), methods=["POST"]),
    ]


def _device_routes(console: Console) -> list[Route]:
    """Setup and manual control: open an experiment, handshakes, connect, commands."""
    rig = console.rig
    action = _action

    async def command(body: dict[str, Any]) -> dict[str, Any]:
        device, name = str(body.get("device", "")), str(body.get("command", ""))
        args = body.get("args") or {}
        who = str(body.get("confirmed_by", "")).strip()
        if not device or not name:
            raise ValueError("device and command are required")
        if not isinstance(args, dict):
            raise ValueError("args must be a JSON object")
        if not who:
            raise ValueError("say who confirms the command (confirmed_by)")
        if body.get("confirm") is not True:
            raise ValueError("a manual command needs confirm: true")
        return await rig.command(device, name, args, who)

    async def connect(body: dict[str, Any]) -> dict[str, Any]:
        await anyio.to_thread.run_sync(rig.connect)
        return {}

    async def disconnect(body: dict[str, Any]) -> dict[str, Any]:
        await anyio.to_thread.run_sync(rig.disconnect)
        return {}

    async def load(body: dict[str, Any]) -> dict[str, Any]:
        if rig.read_only:
            raise RigError("this console only watches a run; it cannot open experiments")
        if not str(body.get("path", "")).strip():
            raise ValueError("give the path of an experiment file")
        path = Path(str(body["path"]))
        ok = await anyio.to_thread.run_sync(lambda: rig.load(path.expanduser()))
        return {"valid": ok, "meta": rig.meta()}

    async def handshake(body: dict[str, Any]) -> dict[str, Any]:
        return {"devices": await rig.handshake_all()}

    return [
        Route("/api/command", action(command), methods=["POST"]),
        Route("/api/connect", action(connect), methods=["POST"]),
        Route("/api/disconnect", action(disconnect), methods=["POST"]),
        Route("/api/config", action(load), methods=["POST"]),
        Route("/api/handshake", action(handshake), methods=["POST"]),
    ]


def build_app(console: Console) -> Starlette:
    """The Starlette application of ``console`` (wrapped in the token gate)."""
    rig = console.rig
    action = _action

    async def index(request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, console.token, httponly=True, samesite="strict", path="/")
        return response

    async def meta(request: Request) -> Response:
        return JSONResponse(rig.meta())

    async def status(request: Request) -> Response:
        return JSONResponse({**rig.status(), "prompt": console.prompt})

    async def start(body: dict[str, Any]) -> dict[str, Any]:
        rig.start_run()
        return {}

    async def stop(body: dict[str, Any]) -> dict[str, Any]:
        rig.request_stop("operator_stop")
        return {}

    async def force(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("confirm") is not True:
            raise ValueError("force stop needs confirm: true")
        rig.force_stop()
        return {}

    async def ack(body: dict[str, Any]) -> dict[str, Any]:
        step = body.get("step")
        if not isinstance(step, int):
            raise ValueError("step (the prompt's step index) is required")
        result = await anyio.to_thread.run_sync(rig.acknowledge, step, str(body.get("by", "")))
        console._prompt_checked = 0.0
        return result

    async def quit_(body: dict[str, Any]) -> dict[str, Any]:
        if rig.read_only:
            raise RigError("this console belongs to `capa run`; stop the run instead")
        if console.on_quit is not None:
            console.on_quit()
        return {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(console.broadcaster())
        if console.on_ready is not None:
            console.on_ready()
        try:
            yield
        finally:
            console.closing = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/", index),
        Route("/api/meta", meta),
        Route("/api/status", status),
        Route("/api/stream", console.stream),
        Route("/api/run/start", action(start), methods=["POST"]),
        Route("/api/run/stop", action(stop), methods=["POST"]),
        Route("/api/run/force", action(force), methods=["POST"]),
        Route("/api/prompt/ack", action(ack), methods=["POST"]),
        *_device_routes(console),
        Route("/api/quit", action(quit_), methods=["POST"]),
        *_review_routes(console, action),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(TokenGate, token=console.token)
    return app
