"""End to end in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Loads the demo rig, handshakes its devices, starts a run, sees values move, answers the
operator prompt in the page, lets the run finish, finds the sealed run in Review and
verifies it, then quits from the page. Any JavaScript error (console error or uncaught
exception) fails the test. Screenshots of every page are saved (the path is printed);
with CAPA_GUI_SCREENSHOT=1 the Run page is also written to packages/capa-gui/docs/.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`.ci/run`
installs it with apt).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CAPA_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[1] / "docs"

pytestmark = pytest.mark.slow


@pytest.fixture
def browser_page(tmp_path_factory) -> Iterator[tuple[Any, list[str], Path]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs the Debian chromium package")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("capa-gui-screenshots")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console.{msg.type}: {msg.text} at {msg.location}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        try:
            yield page, errors, shots
        finally:
            browser.close()
            print(f"\ncapa-gui screenshots: {shots}")


def _numbers(page: Any) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#numbers tbody tr')]
            .map(r => [r.dataset.channel, r.children[1].textContent]))"""
    )
    return result


def test_console_runs_the_demo_rig_in_chromium(serve, demo_dir, browser_page):
    page, errors, shots = browser_page
    running = serve(demo_dir / "recipe.yaml")
    page.goto(running.url)
    page.wait_for_function("document.querySelector('#state-badge').dataset.state === 'idle'")

    # Setup: problems (none), the method's steps, and a read-only handshake per device.
    page.click("#tab-setup")
    assert page.locator("#steps li").count() == 5
    assert "valid" in page.inner_text("#config-summary")
    page.click("#handshake-btn")
    page.wait_for_function(
        """() => [...document.querySelectorAll('#devices td.handshake')]
            .every(td => td.textContent.startsWith('ok'))""",
        timeout=30_000,
    )
    page.screenshot(path=str(shots / "setup.png"), full_page=True)

    # Run: start, values move, plots draw.
    page.click("#tab-run")
    page.click("#start-btn")
    page.wait_for_function(
        "document.querySelector('#state-badge').dataset.state === 'running'", timeout=30_000
    )
    page.wait_for_function(
        "document.querySelector('#numbers tr[data-channel=furnace_t] .value').textContent !== '–'",
        timeout=30_000,
    )
    first = _numbers(page)
    page.wait_for_timeout(1500)
    second = _numbers(page)
    moved = [name for name in first if first[name] != second[name]]
    assert moved, f"no value changed: {first} -> {second}"
    assert page.evaluate("window.__capa.stats.draws") > 0
    units = page.inner_text("#plots")
    assert "degC" in units

    # The operator prompt appears as a dialog with its text; answer it in the page.
    page.wait_for_selector("#prompt-dialog[open]", timeout=30_000)
    assert page.inner_text("#prompt-title") == "Furnace at temperature"
    assert "Insert the specimen" in page.inner_text("#prompt-message")
    page.wait_for_timeout(500)  # let a few more frames draw for the screenshot
    page.screenshot(path=str(shots / "run-prompt.png"), full_page=True)
    # "Later" puts it off; the toolbar keeps a button to bring it back.
    page.click("#prompt-later")
    page.wait_for_selector("#prompt-reopen", state="visible", timeout=10_000)
    page.click("#prompt-reopen")
    page.wait_for_selector("#prompt-dialog[open]", timeout=10_000)
    page.fill("#prompt-by", "alice")
    page.click("#prompt-ack")
    page.wait_for_selector("#prompt-dialog", state="hidden", timeout=10_000)
    page.wait_for_function(
        "document.querySelector('#events').textContent.includes('acknowledged by alice')",
        timeout=30_000,
    )
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "run.png"), full_page=True)
    if os.environ.get("CAPA_GUI_SCREENSHOT"):
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shots / "run.png", DOCS / "run-page.png")

    # The run finishes by itself (acquire, safe_shutdown) and seals its bundle.
    page.wait_for_function(
        "document.querySelector('#run-message').textContent.includes('completed')",
        timeout=60_000,
    )
    result = running.rig.last_result
    assert result is not None
    assert (result.run_status, result.bundle_status) == ("completed", "sealed")
    health = page.inner_text("#health")
    assert "dropped rows\n0" in health or "dropped rows\t0" in health, health

    # Manual command between runs: through the pool, confirmed, with who confirmed it.
    page.select_option("#manual-device", "furnace")
    page.fill("#manual-command", "write")
    page.fill("#manual-args", '{"field": "setpoint", "value": 30}')
    page.fill("#manual-by", "alice")
    page.click("#manual-send")
    assert "between runs" in page.inner_text("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_function(
        "document.querySelector('#manual-result').textContent.startsWith('accepted via pool')",
        timeout=15_000,
    )

    # Review: the sealed run is in the catalog; its plots, events, timeline; verify it.
    page.click("#tab-review")
    row = page.locator(f"#runs-table tr[data-run='{result.run_id}']")
    row.wait_for(timeout=10_000)
    assert "sealed" in row.inner_text()
    row.click()
    page.wait_for_function(
        "document.querySelectorAll('#review-plots .plot').length >= 8", timeout=30_000
    )
    assert page.locator("#timeline .bar").count() >= 5
    assert "method.prompt.acknowledged" in page.inner_text("#review-events")
    assert "frames" in page.inner_text("#video")  # the simulated camera recorded video
    page.click("#verify-btn")
    page.wait_for_function(
        "document.querySelector('#verify-result').textContent.startsWith('ok')", timeout=30_000
    )
    page.screenshot(path=str(shots / "review.png"), full_page=True)

    # Quit from the page (confirmed): the server shuts down.
    page.click("#quit-btn")
    page.click("#confirm-ok")
    page.wait_for_function(
        "document.body.textContent.includes('The console was closed')", timeout=10_000
    )
    running.served.thread.join(timeout=15)  # type: ignore[union-attr]
    assert not running.served.thread.is_alive()  # type: ignore[union-attr]

    assert errors == []
