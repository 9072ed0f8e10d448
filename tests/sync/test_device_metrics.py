"""The device's ``/metrics`` (the HTTP app of ``patrol-edge run``), scraped over HTTP and read with
``prometheus_client.parser``, moves with real work: records queued and acked by the server through the broker
(outbox, sync), a recorded segment indexed and then uploaded and confirmed (uploads), the recorder's
status file, and the battery as the power-supply files say (the charger simulator)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from live_metrics import scrape, served, value
from sync_harness import SyncRig, fill_outbox, wait_for

from core.clock import SystemClock
from core.manifest import format_utc
from core.sync.signing import b64d
from edge.config import EdgeConfig
from edge.http import create_device_app
from edge.identity import DeviceIdentity
from edge.recorder.index import DatabaseIndex
from edge.recorder.recorder import STATUS_FILE
from edge.upload.client import UploadClient
from edge.upload.uploader import Uploader
from server.app import create_app
from server.config import ServerConfig, StorageSection
from simulators.power import PowerSimulator
from tests.signed_segments import signed_segments

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]
RECORDS = 12


def _recorder_status(directory: Path, frames: int) -> None:
    """The recorder's status file, as the recording process writes it."""
    status = {"state": "recording", "pid": os.getpid(), "updated_utc": format_utc(SystemClock().now()),
              "segment_seq": 2, "frames_total": frames, "last_closed_seq": 1, "free_bytes": 40 * 10**9,
              "hours_left": 31.5, "storage_low": False, "frames_dropped": 0}  # fmt: skip
    (directory / STATUS_FILE).write_text(json.dumps(status))


def test_device_metrics_move_with_the_outbox_uploads_recorder_and_battery(
    rig: SyncRig, tmp_path: Path
) -> None:
    identity = DeviceIdentity(
        rig.dev.device_id, Ed25519PrivateKey.from_private_bytes(b64d(rig.dev.private_key_b64, "key"))
    )
    power = PowerSimulator(tmp_path / "power_supply")
    power.set_battery(64)
    config = EdgeConfig.model_validate(
        {
            "device": {"id": identity.device_id, "data_dir": str(tmp_path / "device")},
            "power": {"sysfs": str(tmp_path / "power_supply")},
            "officer": {"enabled": False},
        }
    )
    config.recording_dir.mkdir(parents=True)
    rig.worker()
    sender = rig.sender()
    server = create_app(ServerConfig(storage=StorageSection(video_dir=tmp_path / "video")), rig.server)
    with served(server) as server_url:
        [(entry, data)] = signed_segments(identity, 1, 150_000)
        path = config.recording_dir / "seg-1.mp4"
        path.write_bytes(data)
        DatabaseIndex(rig.device, identity.device_id).segment_closed(entry, path)
        _recorder_status(config.recording_dir, frames=45)
        app = create_device_app(config, identity, rig.device, sender)
        with served(app) as url:
            before = scrape(url)
            acked = value(before, "patrolkit_device_outbox_records", state="acked")
            acked_since_start = value(before, "patrolkit_device_sync_acked_total")
            assert value(before, "patrolkit_device_upload_segments", state="pending") == 1
            assert value(before, "patrolkit_device_upload_bytes", state="pending") == len(data)
            assert value(before, "patrolkit_device_recorder_state", state="recording") == 1
            assert value(before, "patrolkit_device_recorder_frames_total") == 45
            assert value(before, "patrolkit_device_battery_percent") == 64
            assert value(before, "patrolkit_device_on_charger") == 0

            fill_outbox(rig.device, RECORDS)
            wait_for(lambda: rig.pending() == 0, what="the device's records to be acked")
            uploader = Uploader(rig.device, config.recording_dir, UploadClient(server_url, identity))
            assert uploader.run_once().confirmed == 1
            _recorder_status(config.recording_dir, frames=90)
            power.dock()
            power.set_battery(71)
            after = scrape(url)
            assert value(after, "patrolkit_device_outbox_records", state="pending") == 0
            assert value(after, "patrolkit_device_outbox_records", state="acked") >= acked + RECORDS
            assert value(after, "patrolkit_device_outbox_oldest_pending_age_seconds") == 0
            assert value(after, "patrolkit_device_sync_acked_total") >= acked_since_start + RECORDS
            assert value(after, "patrolkit_device_sync_online") == 1
            assert value(after, "patrolkit_device_upload_segments", state="pending") == 0
            assert value(after, "patrolkit_device_upload_segments", state="confirmed") == 1
            assert value(after, "patrolkit_device_upload_bytes", state="confirmed") == len(data)
            assert value(after, "patrolkit_device_recorder_frames_total") == 90
            assert value(after, "patrolkit_device_battery_percent") == 71
            assert value(after, "patrolkit_device_on_charger") == 1
