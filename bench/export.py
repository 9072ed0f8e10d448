"""Benchmark: the evidence export of one hour of footage, from the stop page's button of a real
``patrol-server run`` process (the ZIP streamed over HTTP), against a plain copy of the same files plus
``sha256sum`` of them (what anyone would do by hand), in the same run. Rounds alternate which goes first; each
side's median round counts. While the server exports, its resident memory is sampled every 20 ms: the peak
growth over its size before the export is reported (target: < 64 MB, the export streams).

The hour is 60 segments of PATROLKIT_BENCH_SEGMENT_MB (15) MB each, the size 60 s of 720p footage has at
2 Mbit/s, with signed, chained manifest entries; their bytes are random (the export copies bytes and never
looks inside them, so their content does not change what is measured). PATROLKIT_BENCH_ROUNDS (3).

Target: export throughput >= 0.8x the copy + sha256sum throughput, memory growth < 64 MB.
Last line: one JSON object (value = export MB/s).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.manifest import GENESIS_HASH, ManifestEntry, entry_hash, entry_to_json, format_utc, sign_entry
from core.signing import new_private_key
from edge.identity import DeviceIdentity
from server.db.devices import Device
from server.db.protocols import Officer, Protocol
from server.db.sync import Bookmark
from server.db.video import VideoSegment
from server.video.storage import segment_key
from tests.browser_support import LiveServer, running_server
from tests.web.http_client import supervisor_client

SEGMENTS = 60
SEGMENT_MB = int(os.environ.get("PATROLKIT_BENCH_SEGMENT_MB", "15"))
ROUNDS = int(os.environ.get("PATROLKIT_BENCH_ROUNDS", "3"))
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DEVICE = "DEV-BENCH-EXPORT"
NUMBER = "KZ-BENCH-EXPORT"


def seed(server: LiveServer, scratch: Path) -> list[Path]:
    identity = DeviceIdentity(DEVICE, new_private_key())
    now = datetime.now(UTC)
    prev = GENESIS_HASH
    files = []
    with server.sessions() as session, session.begin():
        session.add(Device(device_id=DEVICE, kid=identity.kid, public_key_b64=identity.public_key_b64,
                           mqtt_username=DEVICE.lower(), created_at=now))  # fmt: skip
        session.add(Officer(badge="B-1", full_name="Бенч Инспектор", unit=""))
        session.flush()
        for seq in range(1, SEGMENTS + 1):
            key = segment_key(DEVICE, seq)
            path = server.video_dir / "segments" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(SEGMENT_MB * 1024 * 1024)
            path.write_bytes(data)
            files.append(path)
            start = T0 + timedelta(minutes=seq - 1)
            entry = sign_entry(ManifestEntry(DEVICE, seq, format_utc(start), format_utc(start + timedelta(minutes=1)),
                                             900, len(data), hashlib.sha256(data).hexdigest(), prev, identity.kid),
                               identity.private_key)  # fmt: skip
            prev = entry_hash(entry)
            session.add(VideoSegment(device_id=DEVICE, seq=seq, started_at=entry.start, ended_at=entry.end, frames=900,
                                     size=len(data), sha256=entry.sha256, prev_hash=entry.prev_hash, entry_hash=prev,
                                     entry_json=entry_to_json(entry), kid=identity.kid, state="stored",
                                     linked_prev=True, storage_key=key, created_at=now, stored_at=now))  # fmt: skip
        session.add(Protocol(number=NUMBER, device_id=DEVICE, jurisdiction="KZ", article="592.1", offence_at=T0 + timedelta(minutes=30),
                             offence_date=date(2026, 3, 2), driver_name="Тест", driver_iin="850101300124",
                             vehicle_plate="123ABC01", officer_badge="B-1", currency="KZT", fine_units=5,
                             unit_value_minor=432500, unit_year=2026, full_minor=2162500, reduced_minor=1081250,
                             discount_deadline=date(2026, 3, 11), dataset_version="kz", status="open",
                             created_at=T0, received_at=T0))  # fmt: skip
        session.add(Bookmark(bookmark_id="bm-bench", record_id="r-bench", device_id=DEVICE,
                             at=T0 + timedelta(minutes=2), ended_at=T0 + timedelta(minutes=58), label="stop",
                             protocol_number=NUMBER))  # fmt: skip  (± 2 min: the whole hour)
    return files


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def export_round(server: LiveServer, out: Path) -> tuple[float, int, int]:
    """Seconds to receive the whole ZIP from the stop page's button, its bytes, and the server's peak RSS
    growth (KiB) while it was made."""
    client = supervisor_client(server)
    try:
        page = client.get(f"{server.url}/review/protocols/{NUMBER}").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        before = rss_kib(server.process.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(server.process.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        size = 0
        began = time.perf_counter()
        with client.stream("POST", f"{server.url}/review/protocols/{NUMBER}/export", data={"csrf": token.group(1)},
                           timeout=600) as response, out.open("wb") as fh:  # fmt: skip
            assert response.status_code == 200, response.read()[:300]
            for piece in response.iter_bytes(1 << 20):
                fh.write(piece)
                size += len(piece)
            fh.flush()
            os.fsync(fh.fileno())
        seconds = time.perf_counter() - began
        done.set()
        sampler.join()
        return seconds, size, peak[0] - before
    finally:
        client.close()


def baseline_round(files: list[Path], folder: Path) -> float:
    """Copy the files (fsynced) and sha256sum them: the plain way to hand over footage with checksums."""
    folder.mkdir()
    began = time.perf_counter()
    for path in files:
        target = folder / path.name
        shutil.copyfile(path, target)
        with target.open("rb") as fh:
            os.fsync(fh.fileno())
    done = subprocess.run(["sha256sum", *(str(folder / p.name) for p in files)], capture_output=True, check=True)
    seconds = time.perf_counter() - began
    assert done.stdout.count(b"\n") == len(files)
    return seconds


def main() -> None:
    if shutil.which("sha256sum") is None:
        sys.exit("bench/export.py needs sha256sum (coreutils) for its baseline")
    total_mb = SEGMENTS * SEGMENT_MB
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        with running_server(scratch / "server") as server:
            files = seed(server, scratch)
            ours: list[float] = []
            theirs: list[float] = []
            growth: list[int] = []
            for n in range(ROUNDS):
                order = ("export", "copy") if n % 2 == 0 else ("copy", "export")
                for what in order:
                    if what == "export":
                        zip_path = scratch / f"export-{n}.zip"
                        seconds, size, grew = export_round(server, zip_path)
                        assert size > total_mb * 1024 * 1024
                        zip_path.unlink()
                        ours.append(seconds)
                        growth.append(grew)
                    else:
                        copy_dir = scratch / f"copy-{n}"
                        theirs.append(baseline_round(files, copy_dir))
                        shutil.rmtree(copy_dir)
                print(f"round {n + 1}: export {total_mb / ours[-1]:.0f} MB/s (RSS +{growth[-1] / 1024:.1f} MB), "
                      f"copy + sha256sum {total_mb / theirs[-1]:.0f} MB/s", flush=True)  # fmt: skip
    export_rate = total_mb / statistics.median(ours)
    copy_rate = total_mb / statistics.median(theirs)
    peak_mb = max(growth) / 1024
    print(json.dumps({
        "bench": "evidence_export_one_hour", "value": round(export_rate, 1), "unit": "MB/s",
        "baseline": round(copy_rate, 1), "ratio": round(export_rate / copy_rate, 2),
        "target": ">= 0.8x copy + sha256sum, server memory growth < 64 MB",
        "peak_memory_growth_mb": round(peak_mb, 1), "footage_mb": total_mb,
        "pass": export_rate / copy_rate >= 0.8 and peak_mb < 64,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
