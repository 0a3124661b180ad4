"""`capa gui` as a process: exit 2 for a refused CONFIG, 0 on Quit or Ctrl-C (seed 001)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx


def _start(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "gui", "--no-browser", "--port", "0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(20):
        line = proc.stdout.readline()
        if "?token=" in line:
            return proc, line.strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_refused_config_exits_2_with_the_problems_capa_validate_prints(demo_dir, tmp_path):
    bad = demo_dir / "bad.yaml"
    bad.write_text((demo_dir / "recipe.yaml").read_text().replace("hardware:", "hardwar:"))
    gui = subprocess.run(
        [sys.executable, "-m", "capa", "gui", str(bad), "--no-browser"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    validate = subprocess.run(
        [sys.executable, "-m", "capa", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert gui.returncode == 2
    assert validate.returncode == 2
    problem_lines = [line for line in validate.stderr.splitlines() if line.startswith("[")]
    assert problem_lines
    for line in problem_lines:
        assert line in gui.stderr
    assert "Traceback" not in gui.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def test_quit_in_the_page_exits_0(demo_dir, tmp_path):
    proc, url = _start(
        str(demo_dir / "recipe.yaml"), "--runs-root", str(tmp_path / "r"), cwd=tmp_path
    )
    base = url.split("/?", 1)[0]
    token = url.split("token=", 1)[1]
    try:
        r = httpx.post(
            f"{base}/api/quit",
            headers={"Authorization": f"token {token}", "Origin": base},
            timeout=10,
        )
        assert r.json() == {"ok": True}
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_exits_0_and_non_loopback_host_warns(tmp_path):
    proc, url = _start("--host", "0.0.0.0", cwd=tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert "warning: listening on 0.0.0.0" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
