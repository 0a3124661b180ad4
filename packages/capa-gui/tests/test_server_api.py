"""The console's HTTP API against a real server: token, same-origin, a run end to end."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import manifest


def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _client(running: Any, *, origin: bool = True) -> httpx.Client:
    headers = {"Authorization": f"token {running.token}"}
    if origin:
        headers["Origin"] = running.base
    return httpx.Client(base_url=running.base, headers=headers, timeout=30)


def test_every_request_needs_the_token(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with httpx.Client(base_url=running.base, timeout=10) as anon:
        for path in ("/", "/api/meta", "/api/status", "/static/app.js", "/api/review/runs"):
            assert anon.get(path).status_code == 403, path
        assert anon.get("/api/meta", params={"token": "wrong"}).status_code == 403
        assert anon.post("/api/run/start", headers={"Origin": running.base}).status_code == 403
        # The URL printed at start sets an HttpOnly cookie; later requests carry it.
        page = anon.get(running.url)
        assert page.status_code == 200
        assert "capa console" in page.text
        assert "httponly" in page.headers["set-cookie"].lower()
        assert anon.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
        assert anon.get("/api/meta").json()["rig"] == "demo-furnace"


def test_state_changes_need_the_same_origin(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with _client(running, origin=False) as client:
        r = client.post("/api/run/start")
        assert r.status_code == 403
        assert "Origin" in r.json()["error"]
        r = client.post("/api/run/start", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        assert "cross-origin" in r.json()["error"]
    assert not running.rig.busy  # nothing was started by the refused requests


def test_meta_lists_channels_groups_units_devices_and_steps(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with _client(running) as client:
        meta = client.get("/api/meta").json()
    names = [c["name"] for c in meta["channels"]]
    assert names[:2] == ["furnace_sp", "furnace_t"]  # hardware-file order
    by_name = {c["name"]: c for c in meta["channels"]}
    assert by_name["furnace_t"]["unit"] == "degC"
    assert by_name["furnace_t"]["group"] == "temperature"
    assert [d["name"] for d in meta["devices"]] == ["furnace", "balance", "daq", "cam"]
    assert [s["kind"] for s in meta["steps"]] == [
        "setpoint",
        "hold",
        "prompt",
        "acquire",
        "safe_shutdown",
    ]
    assert meta["steps"][1]["duration_s"] == 3.0


def test_a_run_with_its_prompt_answered_through_the_api(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with _client(running) as client:
        assert client.post("/api/run/start").json() == {"ok": True}
        second = client.post("/api/run/start")
        assert second.status_code == 409
        assert "already" in second.json()["error"]

        status = _wait(
            lambda: (s := client.get("/api/status").json())["prompt"] and s,
            what="the prompt",
        )
        assert status["state"] == "running"
        prompt = status["prompt"]
        assert prompt["title"] == "Furnace at temperature"
        assert prompt["ack_command"] == f"capa prompt ack {status['run_id']}"
        assert status["step"].startswith("3/5 prompt")
        refused = client.post("/api/prompt/ack", json={"step": prompt["step"], "by": ""})
        assert refused.status_code == 409
        ok = client.post("/api/prompt/ack", json={"step": prompt["step"], "by": "alice"})
        assert ok.json()["by"] == "alice"
        result = _wait(
            lambda: (s := client.get("/api/status").json())["result"] and s["result"],
            what="the sealed run",
        )
    assert result["run_status"] == "completed"
    assert result["bundle_status"] == "sealed"
    assert result["exit_code"] == 0
    bundle = Path(result["bundle"])
    conn = sqlite3.connect(bundle / "events.sqlite")
    rows = conn.execute(
        "SELECT metadata_json FROM events WHERE kind = 'method.prompt.acknowledged'"
    ).fetchall()
    conn.close()
    assert [json.loads(r[0])["acknowledged_by"] for r in rows] == ["alice"]
    assert manifest(bundle)["counts"]["dropped"]["rows"] == 0


def test_stop_then_force_is_refused_without_a_graceful_stop_first(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with _client(running) as client:
        client.post("/api/run/start")
        _wait(lambda: client.get("/api/status").json()["state"] == "running", what="running")
        r = client.post("/api/run/force", json={"confirm": True})
        assert r.status_code == 409
        assert "graceful stop first" in r.json()["error"]
        assert client.post("/api/run/stop").json()["ok"]
        result = _wait(
            lambda: (s := client.get("/api/status").json())["result"] and s["result"],
            what="the stopped run",
        )
    assert result["run_status"] == "aborted"
    assert result["bundle_status"] == "sealed"
    assert result["exit_reason"] == "operator_stop"


def test_manual_command_between_runs_needs_confirmed_by_and_a_connection(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    body = {
        "device": "furnace",
        "command": "write",
        "args": {"field": "setpoint", "value": 30.0},
        "confirm": True,
    }
    with _client(running) as client:
        r = client.post("/api/command", json={**body, "confirmed_by": "bob"})
        assert r.status_code == 409
        assert "not connected" in r.json()["error"]
        assert client.post("/api/connect").json()["ok"]
        r = client.post("/api/command", json=body)
        assert r.status_code == 409
        assert "confirmed_by" in r.json()["error"]
        r = client.post("/api/command", json={**body, "confirmed_by": "bob"})
        assert r.json()["accepted"] is True
        assert r.json()["via"] == "pool"
        r = client.post("/api/command", json={**body, "device": "nope", "confirmed_by": "bob"})
        assert r.status_code == 409
        assert "nope" in r.json()["error"]


def test_setup_reports_problems_with_file_and_line(serve, demo_dir):
    bad = demo_dir / "bad.yaml"
    bad.write_text(
        (demo_dir / "recipe.yaml").read_text().replace("  id: tester\n", "  id: tester\n  x: 1\n")
    )
    running = serve(demo_dir / "recipe.yaml")
    with _client(running) as client:
        r = client.post("/api/config", json={"path": str(bad)}).json()
    assert r["valid"] is False
    errors = [p for p in r["meta"]["problems"] if p["severity"] == "error"]
    assert errors
    assert any("bad.yaml" in p["text"] and p["line"] for p in errors), errors


def test_handshake_strip_identifies_each_device(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml")
    with _client(running) as client:
        devices = client.post("/api/handshake").json()["devices"]
    assert [d["device"] for d in devices] == ["furnace", "balance", "daq", "cam"]
    assert all(d["ok"] for d in devices), devices
    assert devices[0]["identity"]  # the Watlow simulator answers its identity parameters


def test_read_only_console_refuses_start_commands_and_quit(serve, demo_dir):
    running = serve(demo_dir / "recipe.yaml", read_only=True)
    with _client(running) as client:
        for path in ("/api/run/start", "/api/connect", "/api/quit"):
            r = client.post(path)
            assert r.status_code == 409, path
        assert client.get("/api/meta").json()["read_only"] is True


@pytest.mark.parametrize("run_id", ["../etc", "nope"])
def test_review_rejects_unknown_runs(serve, demo_dir, run_id):
    running = serve(None)
    with _client(running) as client:
        assert client.get(f"/api/review/run/{run_id}").status_code == 404


class _Stubborn:
    """A procedure that ignores the stop request (only cancellation ends it)."""

    @staticmethod
    def procedure() -> type:
        import anyio

        import capa

        class Stubborn(capa.Procedure):
            """Sleeps through a stop request."""

            id = "test.stubborn"
            name = "Stubborn"
            Config = capa.EmptyConfig
            uses_method = False

            async def preflight(self, ctx: capa.RunContext) -> list[capa.Problem]:
                return []

            async def run(self, ctx: capa.RunContext) -> None:
                await anyio.sleep(120)

        return Stubborn


def test_force_stop_cancels_a_run_that_ignores_stop_and_still_seals_it(tmp_path, demo_dir):
    import capa
    import capa.embed
    from capa_gui.rig import Rig

    host = capa.embed.load_host()
    plugin = type("StubbornPlugin", (), {})()
    procedure = _Stubborn.procedure()
    plugin.capa_register_procedures = capa.hookimpl(lambda: [procedure])  # type: ignore[attr-defined]
    host.register(plugin, name="stubborn")
    experiment = demo_dir / "stubborn.yaml"
    experiment.write_text(
        "hardware: signals_rig.toml\nprocedure: {id: test.stubborn}\n"
        "operator: {id: t}\nsample: {id: s}\nruntime: {shutdown_grace_s: 60}\n"
    )
    rig = Rig(host, tmp_path / "runs")
    assert rig.load(experiment), rig.problems
    rig.start_loop()
    try:
        rig.start_run()
        _wait(lambda: rig.status()["state"] == "running", what="running")
        with pytest.raises(Exception, match="graceful stop first"):
            rig.force_stop()
        rig.request_stop()
        _wait(lambda: rig.status()["force_available"], what="force offered")
        started = time.monotonic()
        rig.force_stop()
        rig.wait_run(timeout=60)
        waited = time.monotonic() - started
    finally:
        rig.shutdown()
    result = rig.last_result
    assert result is not None
    assert (result.run_status, result.bundle_status) == ("aborted", "sealed")
    assert result.exit_reason == "operator_force_stop"
    assert waited < 30  # not the 60 s grace the conductor would have waited
    m = manifest(Path(str(result.bundle_path)))
    assert m["integrity"]["status"] == "ok"
    assert m["counts"]["scalars"]["rows"] > 0
