"""Fixtures of the officer app's tests: one device app with its simulators per test module (``rig``), a
browser page per test (fresh cookies, a tablet-sized screen), and a clean terminal and printer per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from officer_rig import OfficerRig, running_rig


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
