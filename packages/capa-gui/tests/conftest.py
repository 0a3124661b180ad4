"""Shared fixtures: a short copy of the demo rig, and a console served on a free port."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import capa.embed
from capa_gui.rig import Rig
from capa_gui.server import Served, bind, make_server, serve_in_thread

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "demo"

# The demo recipe shortened to seconds, with a prompt that waits for the operator
# (the example acknowledges its prompts itself so that `capa run` can be headless).
SHORT_METHOD = """\
name = "console-demo"
description = "The demo recipe, shortened for the console tests."

[[steps]]
kind = "setpoint"
target = "furnace_sp"
value = 60.0

[[steps]]
kind = "hold"
target = "furnace_sp"
value = 60.0
duration_s = 3.0

[[steps]]
kind = "prompt"
title = "Furnace at temperature"
message = "Insert the specimen, then acknowledge."
timeout_s = 120.0

[[steps]]
kind = "acquire"
duration_s = 2.0

[[steps]]
kind = "safe_shutdown"
cool_target = { furnace_sp = 25.0 }
"""

SHORT_RECIPE = """\
hardware: rig.toml
method: recipe.method.toml
procedure:
  id: capa.builtin.recipe_runner
  config:
    notes: console test
operator:
  id: tester
sample:
  id: GUI-001
tags: [gui]
runtime:
  shutdown_grace_s: 5
"""


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """The demo rig (all four simulated devices) with the short recipe."""
    work = tmp_path / "demo"
    work.mkdir()
    shutil.copy(EXAMPLES / "rig.toml", work / "rig.toml")
    shutil.copy(EXAMPLES / "signals_rig.toml", work / "signals_rig.toml")
    (work / "recipe.method.toml").write_text(SHORT_METHOD)
    (work / "recipe.yaml").write_text(SHORT_RECIPE)
    return work


@dataclass
class Running:
    """A console served on a background thread."""

    rig: Rig
    served: Served
    url: str
    base: str
    token: str


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Factory: serve a console for an experiment; stopped (run sealed) at teardown."""
    started: list[Running] = []

    def factory(config: Path | None, *, read_only: bool = False) -> Running:
        rig = Rig(capa.embed.load_host(), tmp_path / "runs", read_only=read_only)
        if config is not None:
            assert rig.load(config), rig.problems
        sock = bind("127.0.0.1", 0)
        served = make_server(rig, sock)
        rig.start_loop()
        serve_in_thread(served, sock)
        base = served.url.split("/?", 1)[0]
        running = Running(rig, served, served.url, base, served.console.token)
        started.append(running)
        _wait_up(base, running.token)
        return running

    yield factory
    for running in started:
        running.served.stop()
        running.rig.shutdown()


def _wait_up(base: str, token: str) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/meta?token={token}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def manifest(bundle: Path) -> dict[str, Any]:
    """A sealed bundle's manifest."""
    import json

    data: dict[str, Any] = json.loads((bundle / "manifest.json").read_text())
    return data
