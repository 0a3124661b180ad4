"""`capa report` on a real demo run: the page, the figures, the exit codes."""

from __future__ import annotations

import re
import shutil
import sqlite3
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import DemoRun, capa_cli

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    """Every tag with its attributes, and every text, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def report(demo_run: DemoRun, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    done = capa_cli(
        "report", demo_run.run_id, "--runs-root", str(demo_run.runs_root), "--out", str(out),
        cwd=out.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "integrity:  ok" in done.stdout
    return out


def test_writes_the_page_and_one_png_per_plot_group(report: Path, demo_run: DemoRun):
    import capa

    bundle = capa.open_bundle(demo_run.bundle)
    groups = {info.plot_group or name for name, info in bundle.channels().items()}
    pngs = sorted(p.name for p in (report / "figures").glob("*.png"))
    expected = sorted(re.sub(r"[^A-Za-z0-9_-]+", "_", g).strip("_") + ".png" for g in groups)
    assert pngs == expected
    for png in (report / "figures").glob("*.png"):
        width, height = _png_size(png)
        assert width == 1600
        assert height > 300

    page = _Collect()
    page.feed((report / "report.html").read_text(encoding="utf-8"))
    images = [a for tag, a in page.tags if tag == "img"]
    assert len(images) == len(pngs)
    for attrs in images:
        assert (attrs["src"] or "").startswith("data:image/png;base64,")
    # Nothing is fetched from anywhere: no external script, style or image.
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
    links = sorted(a["href"] for tag, a in page.tags if tag == "a" and a.get("href"))
    assert links == sorted(f"figures/{p}" for p in pngs)


def test_page_shows_summary_units_steps_events_and_health(report: Path, demo_run: DemoRun):
    import capa

    html = (report / "report.html").read_text(encoding="utf-8")
    bundle = capa.open_bundle(demo_run.bundle)
    for value in (demo_run.run_id, "REPORT-001", "tester", "capa.builtin.recipe_runner"):
        assert value in html
    for name, info in bundle.channels().items():
        assert f"<b>{name}</b>" in html
        if info.unit:
            assert f"[{escape(info.unit)}]" in html
    # Every method step the run recorded is a row of the timeline.
    entered = bundle.events(kind="method.step.entered").to_pylist()
    assert len(entered) == 6
    steps_table = html.split("id='steps'", 1)[1].split("</table>", 1)[0]
    assert steps_table.count("<tr class='outcome-completed'>") == 6
    # Every event is listed (the run has far fewer than the info cap).
    events_table = html.split("id='events'", 1)[1].split("</table>", 1)[0]
    assert events_table.count("<tr class='sev-") == len(bundle.events().to_pylist())
    health = html.split("id='health'", 1)[1].split("</table>", 1)[0]
    for device in ("furnace", "balance", "daq", "cam"):
        assert f"<td>{device}</td>" in health
    assert "id='integrity' data-status='ok'" in html


def test_unknown_run_is_one_line_and_exit_2(demo_run: DemoRun, tmp_path: Path):
    out = tmp_path / "out"
    done = capa_cli(
        "report", "20990101T000000-dead", "--runs-root", str(demo_run.runs_root),
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("capa: error:"), done.stderr
    assert "20990101T000000-dead" in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_tampered_bundle_is_reported_and_exits_3(demo_run: DemoRun, tmp_path: Path):
    runs = tmp_path / "runs"
    shutil.copytree(demo_run.bundle, runs / demo_run.run_id)
    events = runs / demo_run.run_id / "events.sqlite"
    with sqlite3.connect(events) as conn:  # an edit after sealing
        conn.execute("UPDATE events SET message = 'edited' WHERE id = 1")
    conn.close()
    out = tmp_path / "out"
    done = capa_cli(
        "report", demo_run.run_id, "--runs-root", str(runs), "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "events.sqlite" in done.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "data-status='mismatch'" in html
    assert "changed: events.sqlite" in html


def test_bundle_path_works_and_bundle_is_left_untouched(demo_run: DemoRun, tmp_path: Path):
    before = sorted(p.relative_to(demo_run.bundle) for p in demo_run.bundle.rglob("*"))
    done = capa_cli("report", str(demo_run.bundle), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"report-{demo_run.run_id}" / "report.html").is_file()
    after = sorted(p.relative_to(demo_run.bundle) for p in demo_run.bundle.rglob("*"))
    assert before == after
    verify = capa_cli(
        "catalog", "verify", demo_run.run_id, "--runs-root", str(demo_run.runs_root),
        cwd=tmp_path,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_out_inside_the_bundle_or_on_a_file_is_refused(demo_run: DemoRun, tmp_path: Path):
    before = sorted(p.relative_to(demo_run.bundle) for p in demo_run.bundle.rglob("*"))
    inside = capa_cli(
        "report", demo_run.run_id, "--runs-root", str(demo_run.runs_root),
        "--out", str(demo_run.bundle / "report"), cwd=tmp_path,
    )  # fmt: skip
    assert inside.returncode == 2
    assert len(inside.stderr.strip().splitlines()) == 1, inside.stderr
    assert "inside the bundle" in inside.stderr
    assert sorted(p.relative_to(demo_run.bundle) for p in demo_run.bundle.rglob("*")) == before

    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    on_file = capa_cli(
        "report", demo_run.run_id, "--runs-root", str(demo_run.runs_root),
        "--out", str(a_file), cwd=tmp_path,
    )  # fmt: skip
    assert on_file.returncode == 2
    assert len(on_file.stderr.strip().splitlines()) == 1, on_file.stderr
    assert on_file.stderr.startswith("capa: error: cannot write the report to")
    assert a_file.read_text() == "not a folder"
