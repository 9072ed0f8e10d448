"""kill -9 of the supervised recorder mid-segment: after repair every segment plays, at most 2 s is lost per
kill, the watchdog restarts within 5 s, every gap is recorded, and the manifest chain stays intact."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from video_check import decoded_frames

from core.manifest import check_chain, parse_utc
from core.signing import new_private_key
from edge.identity import write_key
from edge.recorder.journal import Journal
from edge.recorder.recorder import read_status
from edge.recorder.supervisor import RecorderSupervisor, recorder_command
from simulators.camera import SyntheticCameraServer, read_counter

FPS = 30


def _wait_for(condition, what: str, limit: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _recording_in(directory: Path, pid: int | None) -> bool:
    status = read_status(directory)
    return bool(status and status.get("pid") == pid and status.get("state") == "recording")


def _last_counter(path: Path) -> int:
    last = -1
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            last = read_counter(frame.to_ndarray(format="bgr24"))
    return last


@pytest.mark.slow
def test_kill_9_loses_at_most_two_seconds_and_every_gap_is_recorded(tmp_path: Path) -> None:
    key = new_private_key()
    write_key(tmp_path / "key.pem", key)
    rec_dir = tmp_path / "rec"
    camera = SyntheticCameraServer(320, 240, FPS).start()
    command = recorder_command(
        [
            "--dir",
            str(rec_dir),
            "--camera",
            camera.url,
            "--device-id",
            "DEV-KILL",
            "--key-file",
            str(tmp_path / "key.pem"),
            "--width",
            "320",
            "--height",
            "240",
            "--fps",
            str(FPS),
            "--segment-seconds",
            "2",
            "--log-level",
            "WARNING",
        ]
    )
    supervisor = RecorderSupervisor(command, rec_dir)
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,))
    runner.start()
    kills: list[tuple[int, datetime]] = []
    rng = random.Random(5)
    try:
        _wait_for(lambda: _recording_in(rec_dir, supervisor.pid), "first recording")
        for _ in range(3):
            time.sleep(rng.uniform(1.2, 3.8))  # a random point of a 2 s segment, sometimes past a rollover
            pid = supervisor.pid
            assert pid is not None
            kills.append((camera.current_frame(), datetime.now(UTC)))
            os.kill(pid, signal.SIGKILL)
            _wait_for(
                lambda pid=pid: supervisor.pid != pid and _recording_in(rec_dir, supervisor.pid), "restart"
            )
        time.sleep(1.0)
    finally:
        stop.set()
        runner.join()
        camera.stop()

    journal = Journal(rec_dir)
    entries = journal.entries()
    assert check_chain(entries, key.public_key()) == len(entries)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    files = {int(p.name[:10]): p for p in rec_dir.glob("*.mp4")}
    assert sorted(files) == [e.seq for e in entries], "every segment on disk is closed in the manifest"
    for entry in entries:
        assert decoded_frames(files[entry.seq]) == entry.frames

    gaps = journal.gaps()
    assert len(gaps) == len(kills)
    for (kill_frame, kill_time), gap in zip(kills, gaps, strict=True):
        assert gap.cause == "recorder_crash"
        assert gap.seq_before is not None and gap.seq_after == gap.seq_before + 1
        lost_frames = kill_frame - _last_counter(files[gap.seq_before])
        assert lost_frames <= 2 * FPS, f"lost {lost_frames / FPS:.2f} s at a kill"
        restart = (parse_utc(gap.end_utc) - kill_time).total_seconds()
        assert restart <= 5.0, f"recorder came back after {restart:.1f} s"
    # A killed segment is closed by the repair pass (marked repaired), unless it held no complete fragment yet.
    assert any(e.repaired for e in entries)
