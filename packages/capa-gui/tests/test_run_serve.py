"""`capa run CONFIG --serve`: the Run page for a headless run; stop and prompts only."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from capa_gui.watch import parse_address


def _start_run(config: Path, runs: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "run", str(config), "--runs-root", str(runs), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for _ in range(50):
        line = proc.stderr.readline()
        match = re.search(r"live console: (\S+)", line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("capa run --serve printed no console URL")


def _status(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/api/status").json()
    return data


def _wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_serve_watches_a_headless_run_and_answers_its_prompt(demo_dir, tmp_path):
    proc, url = _start_run(demo_dir / "recipe.yaml", tmp_path / "runs", "--serve", "127.0.0.1:0")
    base, token = url.split("/?token=")
    try:
        with httpx.Client(
            base_url=base,
            headers={"Authorization": f"token {token}", "Origin": base},
            timeout=10,
        ) as client:
            assert client.get("/api/meta").json()["read_only"] is True
            assert client.post("/api/run/start").status_code == 409
            assert client.post("/api/connect").status_code == 409
            prompt = _wait(lambda: _status(client)["prompt"])
            assert prompt["title"] == "Furnace at temperature"
            status = _status(client)
            assert status["state"] == "running"
            assert status["rows"] > 0
            ok = client.post("/api/prompt/ack", json={"step": prompt["step"], "by": "carol"})
            assert ok.json()["by"] == "carol"
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "run_status:       completed" in out


def test_stop_from_the_console_ends_the_run_aborted_and_sealed(demo_dir, tmp_path):
    proc, url = _start_run(demo_dir / "recipe.yaml", tmp_path / "runs", "--serve")
    base, token = url.split("/?token=")
    try:
        with httpx.Client(
            base_url=base,
            headers={"Authorization": f"token {token}", "Origin": base},
            timeout=10,
        ) as client:
            _wait(lambda: _status(client)["state"] == "running")
            assert client.post("/api/run/stop").json() == {"ok": True}
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "run_status:       aborted" in out
    assert "bundle_status:    sealed" in out
    assert "exit_reason:      operator_stop" in out


def test_serve_is_listed_in_run_help_when_the_console_is_installed():
    help_text = subprocess.run(
        [sys.executable, "-m", "capa", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--serve [HOST:PORT]" in help_text


def test_addresses():
    assert parse_address("127.0.0.1") == ("127.0.0.1", None)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
