"""The report opened from disk in a real headless Chromium (Debian's, driven by Playwright).

Every figure must load (an image that failed to decode has naturalWidth 0), the page must
raise no JavaScript error and log no console error, and nothing may be requested from the
network (the page must work on an offline lab PC). Playwright never downloads a browser
here: it launches /usr/bin/chromium (`.ci/run` installs it with apt).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import DemoRun, capa_cli

CHROMIUM = os.environ.get("CAPA_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


def test_report_renders_in_chromium_without_errors(demo_run: DemoRun, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs the Debian chromium package")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report"
    done = capa_cli(
        "report", demo_run.run_id, "--runs-root", str(demo_run.runs_root), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = sorted((out / "figures").glob("*.png"))
    assert figures

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda msg: (
                    errors.append(f"console.{msg.type}: {msg.text}")
                    if msg.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("request", lambda req: requests.append(req.url))
            page.goto((out / "report.html").as_uri())
            page.wait_for_function("document.body.dataset.ready === 'yes'")
            page.wait_for_function(
                "[...document.images].every(img => img.complete)", timeout=15_000
            )
            images = page.evaluate(
                """() => [...document.querySelectorAll('figure.plot img')].map(img => ({
                    w: img.naturalWidth, h: img.naturalHeight, shown: img.clientWidth}))"""
            )
            assert len(images) == len(figures)
            for img in images:
                assert img["w"] == 1600, img
                assert img["h"] > 300, img
                assert img["shown"] > 0, img  # laid out, not hidden

            # The filter hides info events and keeps warnings/errors (a working script).
            visible_before = page.evaluate(
                "document.querySelectorAll('#events tbody tr.sev-info').length"
            )
            assert visible_before > 0
            page.check("#only-problems")
            hidden = page.evaluate(
                """() => [...document.querySelectorAll('#events tbody tr.sev-info')]
                    .every(tr => getComputedStyle(tr).display === 'none')"""
            )
            assert hidden
            if os.environ.get("CAPA_REPORT_SCREENSHOT"):
                page.uncheck("#only-problems")
                page.screenshot(path=os.environ["CAPA_REPORT_SCREENSHOT"], full_page=False)
        finally:
            browser.close()
    assert errors == []
    # Only the page itself and its data: URIs; nothing from the network or the disk.
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert [u for u in requests if u.startswith("file:")] == [(out / "report.html").as_uri()]
