"""``capa sartorius sim --pty PATH`` run as a real process and talked to over its pty."""

import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from capa_sartorius import sbi, xbpi
from capa_sartorius.framing import XbpiSplitter


def start(tmp_path, *args):
    link = tmp_path / "balance"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "sartorius", "sim", "--pty", str(link), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The banner is printed once the pty exists and the symlink points at it.
    banner = proc.stdout.readline()
    assert banner.startswith(f"sartorius simulator ({args[1] if args else 'sbi'}) on {link}")
    assert link.is_symlink()
    return proc, link


def stop(proc, sig=signal.SIGINT):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_sbi_sim_process(tmp_path, procs):
    proc, link = start(tmp_path, "--protocol", "sbi", "--mass-g", "12.5")
    procs.append(proc)
    with serial.Serial(str(link), 9600, bytesize=7, parity="O", timeout=2) as port:
        port.write(sbi.PRINT)
        reading = sbi.parse_line(port.read_until(b"\r\n"))
        assert reading.value == pytest.approx(12.5)
        assert reading.unit == "g"
        port.write(sbi.MODEL)
        assert sbi.parse_text(port.read_until(b"\r\n")) == "SIM220-1S"
    code, out, err = stop(proc)
    assert code == 0, err
    assert "stopped" in out
    assert not link.is_symlink()
    assert not link.exists()


def test_xbpi_sim_process_stops_on_sigterm(tmp_path, procs):
    proc, link = start(tmp_path, "--protocol", "xbpi", "--mass-g", "3")
    procs.append(proc)
    with serial.Serial(str(link), 9600, bytesize=8, parity="O", timeout=2) as port:
        port.write(xbpi.encode_request(xbpi.OP_READ_NET))
        split = XbpiSplitter(replies=True)
        frames = []
        deadline = time.monotonic() + 5
        while not frames and time.monotonic() < deadline:
            frames = split.feed(port.read(1))
        reading = xbpi.decode_measurement(xbpi.decode_reply(frames[0]).body)
        assert reading.value == pytest.approx(3.0)
    code, _, err = stop(proc, signal.SIGTERM)
    assert code == 0, err


def test_refuses_to_replace_a_regular_file(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "capa", "sartorius", "sim", "--pty", str(target)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CAPA_DEBUG": ""},
    )
    assert result.returncode == 2
    assert "not a symlink" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "keep me"
