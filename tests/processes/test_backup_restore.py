"""A backup restores into a server that works (deploy/README.md, Backups): the database is dumped with
``pg_dump -Fc`` and restored with ``pg_restore`` into a new database (on SQLite: the sqlite3 online backup API
into a new file), and ``patrol-server run`` on the copy finds its migrations at head, lets the supervisor log
in and plays the segment uploaded before the dump, from the same video store."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from http_hosts import http_hosts
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import entry_to_json
from edge.upload.client import UploadClient
from server.db.base import make_engine
from server.db.migrate import head_revisions
from server.db.video import VideoSegment
from server.review.accounts import add_supervisor
from tests.databases import fresh_server_db
from tests.signed_segments import T0, registered_device, signed_segments

pytestmark = [pytest.mark.timeout(240), pytest.mark.backend]
PASSWORD = "correct horse battery"


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy(source: str, target: str, directory: Path) -> None:
    """Back ``source`` up and restore it into the empty database ``target``."""
    if source.startswith("sqlite"):
        src = sqlite3.connect(make_url(source).database or "")
        dst = sqlite3.connect(make_url(target).database or "")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        return
    dump = directory / "server.dump"
    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            message = f"{tool} is not installed (Debian: postgresql-client)"
            if os.environ.get("PATROLKIT_REQUIRE_DEPLOY_TOOLS") == "1":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", _libpq(source)], check=True, timeout=120)
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq(target)}", str(dump)],
        check=True,
        timeout=120,
    )


def test_a_dumped_database_restores_into_a_new_one_that_the_server_runs_on(
    tmp_path: Path, server_db_url: str, server_sessions: sessionmaker[Session]
) -> None:
    identity = registered_device(server_sessions, "DEV-BKP")
    with server_sessions() as session, session.begin():
        add_supervisor(session, "rita", "Rita Review", PASSWORD, T0)
    video = tmp_path / "video"
    [(entry, data)] = signed_segments(identity, 1, 300_000)
    with http_hosts(tmp_path / "original", server_db_url, video, ["original"]) as [url]:
        client = UploadClient(url, identity)
        empty, whole = hashlib.sha256().hexdigest(), hashlib.sha256(data).hexdigest()
        assert client.append(1, 0, data, empty, whole, entry_to_json(entry)).state == "stored"

    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    with fresh_server_db(copy_dir) as copy_url:
        _copy(server_db_url, copy_url, tmp_path)
        engine = make_engine(copy_url)
        try:
            with engine.connect() as conn:
                revisions = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
                assert revisions and revisions <= head_revisions(copy_url)
                with server_sessions() as session:  # the original, migrated to head
                    assert revisions == set(session.scalars(text("SELECT version_num FROM alembic_version")))
                assert conn.scalar(select(VideoSegment.state).where(VideoSegment.seq == 1)) == "stored"
        finally:
            engine.dispose()
        with (
            http_hosts(tmp_path / "restored", copy_url, video, ["restored"]) as [url],
            httpx.Client(timeout=30) as browser,
        ):
            page = browser.get(f"{url}/review/login")
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            login = {"csrf": token, "login": "rita", "password": PASSWORD}
            assert browser.post(f"{url}/review/login", data=login).status_code == 303
            played = browser.get(f"{url}/api/video/segments/{identity.device_id}/1/content")
            assert played.status_code == 200 and played.content == data
