"""`capa run`'s live status block: width-aware, units, stable channel order, prompts."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from capa.cli.live import channel_order, render_status


def _plan(*channels: tuple[str, str, str | None]) -> SimpleNamespace:
    return SimpleNamespace(
        channels=[
            SimpleNamespace(name=n, unit=u, mapping=SimpleNamespace(plot_group=g))
            for n, u, g in channels
        ]
    )


PLAN = _plan(
    ("furnace_sp", "degC", "temperature"),
    ("mass", "g", None),
    ("furnace_t", "degC", "temperature"),
    ("heat_flux", "kW/m2", "heat flux"),
    *[(f"tc{i}", "degC", "thermocouples") for i in range(20)],
)


def _lines(progress: dict, width: int, url: str | None = None) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    console.print(render_status(channel_order(PLAN), progress, width, url))
    return out.getvalue().rstrip("\n").split("\n")


def test_order_is_the_hardware_file_grouped_by_plot_group():
    names = [n for n, _ in channel_order(PLAN)]
    assert names[:4] == ["furnace_sp", "furnace_t", "mass", "heat_flux"]
    assert names[4:] == [f"tc{i}" for i in range(20)]


@pytest.mark.parametrize("width", [80, 120])
def test_fits_the_terminal_width_with_units(width):
    latest = {n: 20.0 + i for i, (n, _) in enumerate(channel_order(PLAN))}
    # arrival order must not matter: reverse the dict
    latest = dict(reversed(list(latest.items())))
    progress = {"state": "running", "elapsed_s": 75.2, "rows": 123456, "latest": latest}
    progress["step"] = "3/9 hold"
    lines = _lines(progress, width)
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].startswith("01:15 RUNNING")
    assert "step 3/9 hold" in lines[0]
    assert "123,456 rows" in lines[0]
    assert lines[1].startswith("furnace_sp 20 degC  furnace_t 21 degC  mass 22 g")
    assert len(lines) <= 1 + 3  # status line + at most three lines of values
    if width == 80:
        assert lines[-1].endswith(
            "tc10 34 degC  +9 more"
        )  # 24 channels do not fit: the rest are counted
    else:
        assert lines[-1].endswith("tc19 43 degC")


def test_a_waiting_prompt_says_what_and_how_to_answer():
    progress = {
        "state": "running",
        "elapsed_s": 5,
        "rows": 10,
        "latest": {},
        "prompt": {
            "title": "Furnace at temperature",
            "message": "Insert the specimen",
            "ack": "capa prompt ack 20260101T000000-abcd",
        },
    }
    text = "\n".join(_lines(progress, 200, "http://127.0.0.1:8765/?token=x"))
    assert "PROMPT  Furnace at temperature: Insert the specimen" in text
    assert "capa prompt ack 20260101T000000-abcd" in text
    assert "http://127.0.0.1:8765/?token=x" in text
    assert "furnace_sp – degC" in text  # no value yet
