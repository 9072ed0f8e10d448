"""Fixtures of the officer app's tests: one device app with its simulators per test module (``rig``), a
browser page per test (fresh cookies, a tablet-sized screen), and a clean terminal and printer per test.

``browser`` is started and stopped per module here (not once per session): Playwright's sync API keeps an
event loop running in the main thread while it is open, which would break later tests that call
``asyncio.run``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from officer_rig import OfficerRig, running_rig

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, require_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright, for one test module."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficerRig]:
    with running_rig(tmp_path_factory.mktemp("officer-app")) as r:
        yield r


@pytest.fixture
def tablet(browser: Any, rig: OfficerRig) -> Iterator[Any]:
    """A fresh browser context (no cookies) at a tablet's size, and one page in it."""
    rig.reset_hardware()
    context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()
