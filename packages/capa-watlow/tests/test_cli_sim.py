"""``capa watlow sim --pty PATH`` as a real process, talked to over its terminal."""

import asyncio
import os
import select
import signal
import subprocess
import sys

import pytest
import serial

from capa_watlow import stdbus
from capa_watlow.adapter import EzZonePM


def test_sim_process_serves_the_pty_until_interrupted(tmp_path):
    link = tmp_path / "watlow"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "watlow", "sim", "--pty", str(link),
         "--url", "sim://?addresses=1,2&ambient=20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "simulator printed nothing"
        line = proc.stdout.readline()
        assert "watlow simulator on /dev/" in line
        assert str(link) in line
        assert os.path.realpath(link) == line.split()[3]

        with serial.Serial(str(link), 38400, timeout=2) as port:
            port.write(stdbus.build_request(2, stdbus.ReadRequest(4001, 1)))
            assembler = stdbus.FrameAssembler()
            items = []
            while not items:
                chunk = port.read(assembler.needed())
                assert chunk, "no reply from the simulator process"
                items = assembler.feed(chunk)
        reply = stdbus.decode_payload(items[0].data)
        assert items[0].source == stdbus.device_mac(2)
        assert reply.value == pytest.approx(68.0, abs=0.05)  # ~20 °C ambient, sent in °F

        result = asyncio.run(EzZonePM.handshake(EzZonePM.Params(port=str(link), address=1)))
        assert result.ok, result.detail
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert not link.exists()


def test_bad_url_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "capa", "watlow", "sim", "--pty", str(tmp_path / "x"),
         "--url", "sim://?colour=red"],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 64  # a click usage error: EX_USAGE at capa's one CLI boundary
    assert "colour" in proc.stderr
    assert "Traceback" not in proc.stderr
