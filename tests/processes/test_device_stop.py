"""`patrol-edge run` stops when told, takes its recorder with it, and never lets two recorders share a folder.

Every test starts the real device process and sends it real signals; what is left is checked through /proc and the
ports, and what was recorded through the manifest, the recorder's gaps and the device database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from process_tree import Proc, descendants, events_named, gone, listening, wait_for, with_argument

from core.manifest import check_chain
from edge.identity import load_identity
from edge.recorder.journal import Journal
from edge.recorder.recorder import read_status
from edge.recorder.recovery import file_sha256
from simulators.demo import free_port

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@dataclass
class Device:
    root: Path
    config: Path
    port: int
    device_id: str
    _started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def video(self) -> Path:
        return self.root / "data" / "video"

    @property
    def db(self) -> Path:
        return self.root / "data" / "device.db"

    def start(self, log_name: str) -> subprocess.Popen[bytes]:
        log = (self.root / log_name).open("ab")
        proc = subprocess.Popen(
            [str(BIN / "patrol-edge"), "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._started.append(proc)
        return proc

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def recorder(self) -> Proc | None:
        """The living recorder process writing into this device's folder (None if there is none)."""
        found = [p for p in with_argument(str(self.video)) if "edge.recorder.process" in p.cmdline]
        assert len(found) <= 1, f"two recorders on one folder: {found}"
        return found[0] if found else None

    def recording(self, by: Proc | None = None) -> bool:
        status = read_status(self.video)
        rec = self.recorder()
        return bool(
            rec is not None
            and (by is None or rec == by)
            and status
            and status.get("pid") == rec.pid
            and status.get("state") == "recording"
            and closed_segments(self.video) >= 1
        )


def closed_segments(video: Path) -> int:
    """Entries in the manifest, read without opening a Journal (which would cut a line being written)."""
    try:
        return (video / "manifest.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    port = free_port()
    device_id = f"DEV-SIG-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""[device]
id = "{device_id}"
data_dir = "{tmp_path / "data"}"

[camera]
source = "synthetic://"
width = 160
height = 120
fps = 10
segment_seconds = 2

[mqtt]
enabled = false

[upload]
enabled = false

[http]
port = {port}
""",
        encoding="utf-8",
    )
    dev = Device(tmp_path, config, port, device_id)
    try:
        yield dev
    finally:  # whatever a failed test left: the device processes, then any recorder on its folder
        for proc in dev._started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for rec in with_argument(str(dev.video)):
            os.kill(rec.pid, signal.SIGKILL)


def _assert_everything_indexed(dev: Device) -> None:
    """Every segment file is chained in the manifest and indexed in the database with its hash (so it uploads)."""
    journal = Journal(dev.video)
    entries = journal.entries()
    key = load_identity(dev.device_id, dev.root / "data" / "device_ed25519.pem").private_key
    assert check_chain(entries, key.public_key()) == len(entries)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1)), "one chain, no seq twice"
    files = {int(p.name[:10]): p for p in dev.video.glob("*.mp4")}
    assert sorted(files) == [e.seq for e in entries], "every file on disk is closed in the manifest"
    with sqlite3.connect(dev.db) as db:
        rows = dict(db.execute("SELECT seq, sha256 FROM recording_segment WHERE upload_state = 'pending'"))
        outbox = db.execute("SELECT count(*) FROM outbox WHERE record_type = 'segment'").fetchone()[0]
    assert rows == {seq: file_sha256(path) for seq, path in files.items()}, "each file indexed with its hash"
    assert outbox == len(files), "each segment queued for sync"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_device_and_its_recorder(device: Device, sig: signal.Signals) -> None:
    proc = device.start("device.log")
    wait_for(lambda: device.healthy() and device.recording(), "the device to record")
    recorder = device.recorder()
    assert recorder is not None and recorder.ppid == proc.pid

    proc.send_signal(sig)
    assert proc.wait(60) == 0
    assert gone([recorder]), "the recorder outlived the device process"
    assert not descendants(proc.pid)
    assert not listening(device.port)
    log = device.root / "device.log"
    assert events_named(log, "device.stopped"), log.read_text()
    assert events_named(log, "recorder.stopped"), log.read_text()
    assert read_status(device.video)["state"] == "stopped"  # type: ignore[index]
    _assert_everything_indexed(device)


def test_a_killed_device_takes_its_recorder_along_and_the_next_run_records_the_gap(device: Device) -> None:
    first = device.start("device-1.log")
    wait_for(lambda: device.healthy() and device.recording(), "the device to record")
    orphan = device.recorder()
    assert orphan is not None

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = device.start(
        "device-2.log"
    )  # at once, as a service manager restarts it: the orphan may still close
    wait_for(lambda: gone([orphan]), "the recorder to end with its device process", limit=30)
    stopped = events_named(device.root / "device-1.log", "recorder.stopped")
    assert [(e["pid"], e["cause"]) for e in stopped] == [(orphan.pid, "device_process_died")]
    closed_before = closed_segments(device.video)

    wait_for(lambda: device.healthy() and device.recording(), "the next device process to record")
    recorder = device.recorder()
    assert recorder is not None and recorder.ppid == second.pid
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0
    assert gone([recorder])

    _assert_everything_indexed(device)
    gaps = Journal(device.video).gaps()
    assert [g.cause for g in gaps] == ["device_process_died"], gaps
    assert gaps[0].seq_before == closed_before and gaps[0].seq_after == closed_before + 1
    with sqlite3.connect(device.db) as db:
        assert db.execute("SELECT cause FROM recording_gap").fetchall() == [("device_process_died",)]
        assert db.execute("SELECT count(*) FROM outbox WHERE record_type = 'recording_gap'").fetchone() == (
            1,
        )


def test_a_second_device_process_on_the_same_folder_refuses_to_start_naming_the_first(device: Device) -> None:
    first = device.start("device-1.log")
    wait_for(lambda: device.healthy() and device.recording(), "the device to record")
    recorder = device.recorder()
    entries_before = closed_segments(device.video)

    second = device.start("device-2.log")
    assert second.wait(60) != 0
    text = (device.root / "device-2.log").read_text()
    assert f"pid {first.pid}" in text, text
    assert device.recorder() == recorder and first.poll() is None, "the first device and its recorder go on"
    assert closed_segments(device.video) >= entries_before
    assert not (device.video / "gaps.jsonl").exists(), "no false gap"

    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0
    _assert_everything_indexed(device)
    assert not Journal(device.video).gaps()


def test_a_second_recorder_on_a_folder_refuses_to_start_naming_the_pid_that_holds_it(device: Device) -> None:
    proc = device.start("device.log")
    wait_for(lambda: device.healthy() and device.recording(), "the device to record")
    recorder = device.recorder()
    assert recorder is not None
    second = subprocess.run(
        [*recorder.cmdline[:1], "-m", "edge.recorder.process", *recorder.cmdline[3:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert f"locked by recorder pid {recorder.pid}" in second.stderr, second.stderr
    assert device.recorder() == recorder and device.recording(by=recorder)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    _assert_everything_indexed(device)
    assert not Journal(device.video).gaps(), "no false recorder_crash gap"
