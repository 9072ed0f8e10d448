"""A recording folder has one owner at a time: a second owner is refused with the pid of the first, the lock goes
with its owner however that ends (SIGKILL included), and the watchdog waits for a folder someone else records into
instead of starting a second recorder."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.signing import new_private_key
from edge.folder_lock import FolderLock, FolderLocked
from edge.identity import write_key
from edge.recorder.process import LOCK_FILE
from edge.recorder.recorder import read_status
from edge.recorder.supervisor import RecorderSupervisor, recorder_command

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edge.folder_lock import FolderLock
    FolderLock(Path(sys.argv[1]), sys.argv[2], "recorder").acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


def _hold_in_child(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), LOCK_FILE], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _wait_for(condition, what: str, limit: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_owner_is_refused_with_the_pid_of_the_first(tmp_path: Path) -> None:
    holder = _hold_in_child(tmp_path)
    try:
        with pytest.raises(FolderLocked, match=f"locked by recorder pid {holder.pid}") as refused:
            FolderLock(tmp_path, LOCK_FILE, "recorder").acquire()
        assert refused.value.holder == holder.pid
        assert FolderLock(tmp_path, LOCK_FILE, "recorder").held_by_other() == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_goes_with_an_owner_that_is_killed(tmp_path: Path) -> None:
    holder = _hold_in_child(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists(), "the file stays; the kernel dropped the lock"
    lock = FolderLock(tmp_path, LOCK_FILE, "recorder").acquire()
    try:
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    finally:
        lock.release()
    assert FolderLock(tmp_path, LOCK_FILE, "recorder").held_by_other() is None


def test_the_watchdog_waits_for_a_folder_another_recorder_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_key(tmp_path / "key.pem", new_private_key())
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    command = recorder_command(
        ["--dir", str(rec_dir), "--camera", "synthetic://", "--device-id", "DEV-LOCK",
         "--key-file", str(tmp_path / "key.pem"), "--width", "160", "--height", "120", "--fps", "10",
         "--segment-seconds", "2", "--log-level", "WARNING"]
    )  # fmt: skip
    holder = _hold_in_child(rec_dir)
    supervisor = RecorderSupervisor(command, rec_dir, poll_seconds=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,))
    caplog.set_level(logging.INFO, logger="edge.recorder.supervisor")
    runner.start()
    try:
        _wait_for(lambda: any(getattr(r, "event", None) == "recorder.folder_locked" for r in caplog.records),
                  "the watchdog to see the lock")  # fmt: skip
        locked = next(r for r in caplog.records if getattr(r, "event", None) == "recorder.folder_locked")
        assert getattr(locked, "holder", None) == holder.pid
        assert supervisor.pid is None, "no recorder started while another holds the folder"
        holder.kill()
        holder.wait()
        _wait_for(lambda: supervisor.pid is not None, "the recorder to start once the folder is free")
        _wait_for(lambda: (read_status(rec_dir) or {}).get("state") == "recording", "recording")
        assert supervisor.restarts == 0
    finally:
        stop.set()
        runner.join()
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert (read_status(rec_dir) or {}).get("state") == "stopped"
