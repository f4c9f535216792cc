"""Fixtures for the web UI: the scheduler runs (the UI shows live training), and a browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dyntrain.kernel.config import Settings
from tests.web.watch import DESKTOP, Watched

CHROMIUM = os.environ.get("DYNTRAIN_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """The root fixture's settings with the training scheduler ON (``live_server`` and
    ``client`` build on it), so uploads really retrain and the pages show it live."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, seed_demo=False,
                    scheduler_enabled=True, scheduler_poll_s=0.2)


# Chromium's flags for every test browser (never a downloaded browser, never a sandbox or GPU here).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def playwright():
    """One Playwright driver for the session: a second sync_playwright() in the same thread while
    one runs fails ("Sync API inside the asyncio loop"), so every browser is launched from this."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: the UI tests need Debian's (apt-get install -y chromium; "
                    ".ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch_chromium(playwright, *extra_args: str):
    """Debian's headless Chromium with the test flags (and any extra ones)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="session")
def browser(playwright):
    """Debian's headless Chromium driven by Playwright (never a downloaded browser)."""
    b = launch_chromium(playwright)
    yield b
    b.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def watched(browser):
    opened: list[Watched] = []

    def open_(viewport=DESKTOP, url=None) -> Watched:
        w = Watched(browser, viewport, url)
        opened.append(w)
        return w

    yield open_
    for w in opened:
        w.close()
