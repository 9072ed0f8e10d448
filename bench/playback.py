"""Benchmark: an 8-hour shift of 60-s segments in the workspace's player.

A real ``patrol-server run`` process (SQLite, or PostgreSQL with PATROLKIT_TEST_DB_URL) holds 480 stored
segments of one device: rows with signed, chained manifest entries, each file a real 60-s H.264 fMP4 segment
written by the recorder's code (one recording, hard-linked 480 times to save disk: the playlist and every
byte range in it are real). It measures

- the playlist of the whole shift (``GET /review/api/footage/<device>.m3u8``, 480 files): cold (the layouts
  made from the stored files) and warm (median of 10); baseline: reading the same rows' layouts from the
  database, the floor of any playlist;
- in Debian's Chromium (Playwright), the time from a seek to a random position of the shift until the frame
  there is shown (``requestVideoFrameCallback``), through hls.js on that playlist, median of
  PATROLKIT_BENCH_SEEKS (12); baseline: the same seek in one segment played as a plain MP4 file.

Targets: playlist < 200 ms (warm), seek < 2 s. Last line: one JSON object (value = seek p50 in ms).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.manifest import GENESIS_HASH, ManifestEntry, entry_hash, entry_to_json, format_utc, sign_entry
from core.signing import new_private_key
from edge.identity import DeviceIdentity
from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from server.db.devices import Device
from server.db.protocols import Officer, Protocol
from server.db.video import VideoSegment
from server.video.storage import segment_key
from simulators.camera import SyntheticScene
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, running_server
from tests.web.http_client import supervisor_client

SEGMENTS = 480
SEGMENT_S = 60
FPS = 15
SEEKS = int(os.environ.get("PATROLKIT_BENCH_SEEKS", "12"))
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DEVICE = "DEV-BENCH-PLAY"
NUMBER = "KZ-BENCH-PLAY"


def record_segment(path: Path) -> None:
    writer = SegmentWriter(path, 160, 120, FPS, EncoderSettings())
    scene = SyntheticScene(160, 120)
    for n in range(SEGMENT_S * FPS):
        writer.write(scene.frame(n))
    writer.close()


def seed(server: object, sample: Path) -> None:
    from sqlalchemy.orm import Session, sessionmaker

    sessions: sessionmaker[Session] = server.sessions  # type: ignore[attr-defined]
    video_dir: Path = server.video_dir  # type: ignore[attr-defined]
    identity = DeviceIdentity(DEVICE, new_private_key())
    data = sample.read_bytes()
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    now = datetime.now(UTC)
    prev = GENESIS_HASH
    with sessions() as session, session.begin():
        session.add(Device(device_id=DEVICE, kid=identity.kid, public_key_b64=identity.public_key_b64,
                           mqtt_username=DEVICE.lower(), created_at=now))  # fmt: skip
        session.flush()
        for seq in range(1, SEGMENTS + 1):
            start = T0 + timedelta(seconds=SEGMENT_S * (seq - 1))
            entry = sign_entry(ManifestEntry(DEVICE, seq, format_utc(start), format_utc(start + timedelta(seconds=SEGMENT_S)),
                                             SEGMENT_S * FPS, len(data), digest, prev, identity.kid), identity.private_key)  # fmt: skip
            prev = entry_hash(entry)
            key = segment_key(DEVICE, seq)
            target = video_dir / "segments" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(sample, target)
            session.add(VideoSegment(device_id=DEVICE, seq=seq, started_at=entry.start, ended_at=entry.end,
                                     frames=entry.frames, size=entry.size, sha256=digest, prev_hash=entry.prev_hash,
                                     entry_hash=prev, entry_json=entry_to_json(entry), kid=identity.kid, state="stored",
                                     linked_prev=True, storage_key=key, created_at=now, stored_at=now))  # fmt: skip
        session.add(Officer(badge="B-1", full_name="Бенч Инспектор", unit=""))
        session.flush()
        session.add(Protocol(number=NUMBER, device_id=DEVICE, jurisdiction="KZ", article="592.1", offence_at=T0 + timedelta(hours=1),
                             offence_date=date(2026, 3, 2), driver_name="Тест", driver_iin="850101300124",
                             vehicle_plate="123ABC01", officer_badge="B-1", currency="KZT", fine_units=5,
                             unit_value_minor=432500, unit_year=2026, full_minor=2162500, reduced_minor=1081250,
                             discount_deadline=date(2026, 3, 11), dataset_version="kz", status="open",
                             created_at=T0, received_at=T0))  # fmt: skip


def playlist_times(server: object) -> tuple[float, float, float, str]:
    from sqlalchemy import select

    url: str = server.url  # type: ignore[attr-defined]
    start, end = T0, T0 + timedelta(seconds=SEGMENT_S * SEGMENTS)
    params = {"start": start.isoformat(), "end": end.isoformat(), "protocol": NUMBER}
    client = supervisor_client(server)  # type: ignore[arg-type]
    try:
        began = time.perf_counter()
        response = client.get(f"{url}/review/api/footage/{DEVICE}.m3u8", params=params)
        cold = time.perf_counter() - began
        assert response.status_code == 200 and response.text.count("#EXT-X-MAP") == SEGMENTS, response.text[:300]
        warm = []
        for _ in range(10):
            began = time.perf_counter()
            text = client.get(f"{url}/review/api/footage/{DEVICE}.m3u8", params=params).text
            warm.append(time.perf_counter() - began)
    finally:
        client.close()
    floor = []
    for _ in range(10):
        began = time.perf_counter()
        with server.sessions() as session:  # type: ignore[attr-defined]
            rows = session.execute(select(VideoSegment.layout_json).where(
                VideoSegment.device_id == DEVICE, VideoSegment.started_at < end, VideoSegment.ended_at > start)).all()  # fmt: skip
            [json.loads(r[0]) for r in rows]
        floor.append(time.perf_counter() - began)
    return cold * 1000, statistics.median(warm) * 1000, statistics.median(floor) * 1000, text


SEEK_JS = """
async ([url, positions, single]) => {
  for (const p of window.patrolkitPlayers || []) { if (p.hls) p.hls.destroy(); }
  const video = document.querySelector('section.footage video');
  const frameAt = (t) => new Promise((resolve) => {
    const began = performance.now();
    const onFrame = (_now, meta) => {
      if (Math.abs(meta.mediaTime - t) < 1.5) { resolve(performance.now() - began); }
      else { video.requestVideoFrameCallback(onFrame); }
    };
    video.requestVideoFrameCallback(onFrame);
    video.currentTime = t;
  });
  let hls = null;
  if (single) { video.src = url; }
  else {
    hls = new Hls({ enableWorker: false, maxBufferLength: 10 });
    hls.loadSource(url); hls.attachMedia(video);
    await new Promise((r) => hls.on(Hls.Events.LEVEL_LOADED, r));
  }
  video.muted = true;
  await video.play().catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  const out = [];
  for (const t of positions) { out.push(await frameAt(t)); }
  if (hls) hls.destroy();
  return out;
}
"""


def seek_times(server: object) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    url: str = server.url  # type: ignore[attr-defined]
    rng = random.Random(11)
    shift_s = SEGMENTS * SEGMENT_S
    positions = [round(rng.uniform(5, shift_s - 5), 2) for _ in range(SEEKS)]
    single_positions = [round(rng.uniform(1, SEGMENT_S - 2), 2) for _ in range(SEEKS)]
    start, end = T0, T0 + timedelta(seconds=shift_s)
    playlist = (f"/review/api/footage/{DEVICE}.m3u8?start={start.isoformat().replace('+', '%2B')}"
                f"&end={end.isoformat().replace('+', '%2B')}&protocol={NUMBER}")  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{url}/review/login")
            page.fill("input[name=login]", server.login)  # type: ignore[attr-defined]
            page.fill("input[name=password]", server.password)  # type: ignore[attr-defined]
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/review/protocols")
            page.goto(f"{url}/review/protocols/{NUMBER}")
            page.wait_for_function("() => window.Hls && window.patrolkitPlayers && window.patrolkitPlayers.length")
            hls_times = page.evaluate(SEEK_JS, [playlist, positions, False])
            single = f"/api/video/segments/{DEVICE}/7/content"
            plain_times = page.evaluate(SEEK_JS, [single, single_positions, True])
        finally:
            browser.close()
    return hls_times, plain_times


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(f"bench/playback.py needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.mp4"
        record_segment(sample)
        with running_server(Path(tmp) / "server") as server:
            seed(server, sample)
            cold, warm, floor, text = playlist_times(server)
            print(f"playlist of {SEGMENTS} segments ({len(text) // 1024} KiB): cold {cold:.0f} ms (layouts made "
                  f"from the files), warm {warm:.1f} ms; reading the rows' layouts alone {floor:.1f} ms", flush=True)  # fmt: skip
            hls_times, plain_times = seek_times(server)
    seek = statistics.median(hls_times)
    plain = statistics.median(plain_times)
    print(f"seek to first frame over the shift: median {seek:.0f} ms, max {max(hls_times):.0f} ms "
          f"({SEEKS} random positions); one plain MP4: median {plain:.0f} ms", flush=True)  # fmt: skip
    print(json.dumps({
        "bench": "playback_8h_shift_seek", "value": round(seek, 1), "unit": "ms", "baseline": round(plain, 1),
        "ratio": round(seek / plain, 2) if plain else None,
        "target": "seek < 2000 ms (every position), playlist < 200 ms (warm)",
        "playlist_ms": round(warm, 1), "playlist_cold_ms": round(cold, 1),
        "pass": max(hls_times) < 2000 and warm < 200,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
