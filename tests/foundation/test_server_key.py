"""The server's signing key made by processes that start at once: they all end up with the one key on disk
(a process that signed with a key nobody else holds would send acks no device can verify)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTERS = 8

_CHILD = """
import sys, time
from pathlib import Path
from core.sync.signing import b64e
from server.keys import load_server_signer
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
print(b64e(load_server_signer(Path(sys.argv[1])).public_raw()))
"""


def test_processes_starting_at_once_agree_on_one_signing_key(tmp_path: Path) -> None:
    key, go = tmp_path / "keys" / "server.key", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(key), str(go)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(STARTERS)
    ]
    for child in children:  # every child has imported and waits at the start line
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    go.touch()
    seen = {child.communicate(timeout=60)[0].strip() for child in children}
    assert all(child.returncode == 0 for child in children)
    on_disk = (Path(str(key) + ".pub")).read_text(encoding="ascii").strip()
    assert seen == {on_disk}
    assert key.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in key.parent.iterdir() if p.name.endswith(".tmp")] == []
