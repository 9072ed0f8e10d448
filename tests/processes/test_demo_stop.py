"""The demo stops with nothing left behind however it is stopped: SIGTERM passed on by `make demo`, or killed
outright (SIGKILL of its process group 3 s after a Ctrl-C), when its children end by themselves."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from demo_run import start_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_sigterm_to_make_demo_stops_every_process_of_the_demo(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo", "--no-stop", through_make=True)
    try:
        demo.read_until_ready()
        make = demo.proc.pid
        assert any("patrol-demo" in " ".join(p.cmdline) and p.ppid == make for p in demo.processes)
        demo.proc.send_signal(signal.SIGTERM)  # to make alone, as a service manager or CI would
        rest = demo.rest_of_output(timeout=90)
        assert "demo stopped" in rest, rest
        assert demo.left_behind() == []
        assert demo.missing_stop_logs() == []
    finally:
        demo.cleanup()


def test_a_demo_killed_outright_takes_every_child_with_it(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo", "--no-stop")
    try:
        demo.read_until_ready()
        demo.proc.send_signal(signal.SIGINT)
        time.sleep(3)
        os.killpg(demo.proc.pid, signal.SIGKILL)
        demo.proc.wait(10)
        assert demo.wait_until_nothing_left(limit=60) == []
        assert demo.missing_stop_logs() == []  # each child was stopped, not killed: it had time to say so
    finally:
        demo.cleanup()
