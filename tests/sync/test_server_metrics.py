"""The server's ``/metrics``, scraped over HTTP and read with ``prometheus_client.parser``, moves with real
work: a device's records drained through the broker into the ingest worker (records, messages, ack latency),
a junk message (dead letters), a record past a gap (records pending on its stream), a segment upload (upload
bytes, storage used) and the daily fines run run as its command (the last run's figures)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from live_metrics import scrape, served, total, value
from sync_harness import T0, SyncRig, fill_outbox, protocol_body, publish_as, wait_for

from core.manifest import entry_to_json
from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message, make_payload
from core.sync.records import CURRENT_VERSION
from core.sync.signing import b64d
from edge.identity import DeviceIdentity
from edge.upload.client import UploadClient
from server.app import create_app
from server.config import ServerConfig, StorageSection
from tests.signed_segments import signed_segments

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]
RECORDS = 30


def _record_after_a_gap(rig: SyncRig, epoch: str, seq: int) -> bytes:
    payload = make_payload(dev=rig.dev.device_id, epoch=epoch, seq=seq, record_id=str(uuid.uuid4()),
                           stream="protocol", sv=CURRENT_VERSION["protocol"], ts=T0, prev="", refs={},
                           body=protocol_body(f"P-GAP-{uuid.uuid4().hex[:6]}"))  # fmt: skip
    return encode_batch_message(rig.signer, [payload])


def test_server_metrics_move_with_ingest_dead_letters_gaps_uploads_and_the_fines_run(
    rig: SyncRig, tmp_path: Path, server_db_url: str
) -> None:
    app = create_app(
        ServerConfig(data_dir=tmp_path, storage=StorageSection(video_dir=tmp_path / "video")), rig.server
    )
    rig.worker(metrics=app.state.metrics.ingest)
    with served(app) as url:
        before = scrape(url)
        assert value(before, "patrolkit_ingest_records_total", outcome="accepted") == 0
        assert value(before, "patrolkit_ingest_ack_latency_seconds_count") == 0

        fill_outbox(rig.device, RECORDS)
        rig.sender()
        wait_for(lambda: rig.pending() == 0, what="the device's records to be acked")
        drained = scrape(url)
        assert value(drained, "patrolkit_ingest_records_total", outcome="accepted") == RECORDS
        assert value(drained, "patrolkit_ingest_messages_total") >= 1
        assert value(drained, "patrolkit_ingest_ack_latency_seconds_count") >= 1
        assert value(drained, "patrolkit_ingest_ack_latency_seconds_bucket", le="+Inf") >= 1
        assert value(drained, "patrolkit_ingest_waiting_messages") == 0

        dev, password = rig.dev.device_id, rig.dev.mqtt_password
        publish_as(rig.mqtt_url, rig.dev.mqtt_username, password, [(up_topic(dev, "protocol"), b"\x00junk")])
        wait_for(lambda: total(scrape(url), "patrolkit_ingest_dead_letters") == 1, what="the dead letter")
        assert value(scrape(url), "patrolkit_ingest_dead_lettered_total") >= 1

        epoch = f"gap-{uuid.uuid4().hex[:8]}"
        publish_as(rig.mqtt_url, rig.dev.mqtt_username, password, [(up_topic(dev, "protocol"), _record_after_a_gap(rig, epoch, 5))])  # fmt: skip
        wait_for(
            lambda: value(scrape(url), "patrolkit_ingest_pending_records", device=dev, epoch=epoch) == 5,
            what="the stream's pending records",
        )
        assert value(scrape(url), "patrolkit_ingest_pending_records_all") >= 5

        identity = DeviceIdentity(dev, Ed25519PrivateKey.from_private_bytes(b64d(rig.dev.private_key_b64, "key")))
        [(entry, data)] = signed_segments(identity, 1, 200_000)
        client = UploadClient(url, identity)
        client.announce(entry.seq, entry_to_json(entry))
        half = len(data) // 2
        client.append(entry.seq, 0, data[:half], _sha(b""), _sha(data[:half]))
        assert client.append(entry.seq, half, data[half:], _sha(data[:half]), _sha(data)).state == "stored"
        uploaded = scrape(url)
        assert value(uploaded, "patrolkit_video_upload_bytes_total") == len(data)
        assert value(uploaded, "patrolkit_video_segments_stored_total") == 1
        assert value(uploaded, "patrolkit_video_storage_bytes", state="stored") == len(data)
        assert value(uploaded, "patrolkit_video_segments", state="stored") == 1
        assert value(uploaded, "patrolkit_video_store_free_bytes") > 0

        assert total(uploaded, "patrolkit_fines_runs") == 0
        config = tmp_path / "server.toml"
        config.write_text(
            f'data_dir = "{tmp_path}"\n\n[database]\nurl = "{server_db_url}"\n', encoding="utf-8"
        )
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "--config", str(config), "fines", "run", "--date", "2026-03-02",
             "--no-send"], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        ran = scrape(url)
        assert value(ran, "patrolkit_fines_runs", status="done") == 1
        assert value(ran, "patrolkit_fines_last_run", status="done", day="2026-03-02") == 1
        assert value(ran, "patrolkit_fines_last_run_started_seconds") > 0
        assert value(ran, "patrolkit_fines_last_run_errors") == 0


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_metrics_say_until_when_the_fine_unit_is_known_so_a_missing_year_is_alerted_before_it_comes(
    rig: SyncRig, tmp_path: Path
) -> None:
    """The KZ MRP is set each year by the budget law; from 1 January of a year with no value, no stop can be
    opened. The gauge is the start of the first year from now on that the packaged dataset has no value for."""
    import tomllib
    from datetime import UTC, datetime

    import core.fines

    data = Path(core.fines.__file__).parent / "data" / "kz.toml"
    known = {rate["year"] for rate in tomllib.loads(data.read_text(encoding="utf-8"))["mrp"]}
    year = datetime.now(UTC).year
    while year in known:
        year += 1
    app = create_app(
        ServerConfig(data_dir=tmp_path, storage=StorageSection(video_dir=tmp_path / "video")), rig.server
    )
    with served(app) as url:
        samples = scrape(url)
    assert value(samples, "patrolkit_fines_unit_known_until_seconds", jurisdiction="KZ") == datetime(
        year, 1, 1, tzinfo=UTC
    ).timestamp()
    assert total(samples, "patrolkit_fines_unit_known_until_seconds", jurisdiction="GE") == 0  # fines in GEL
