"""The server's Ed25519 signing key (signs acks and datasets), made on first start; its public half is
written next to it as ``<file>.pub`` (base64 raw) for provisioning devices."""

from __future__ import annotations

import os
from pathlib import Path

from core.sync.signing import Signer, b64e


def _write_new(path: Path, text: str, mode: int) -> Path:
    """``text`` fsynced into a fresh file next to ``path`` (a name no other process uses)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def load_server_signer(path: Path, create: bool = True) -> Signer:
    """Read the key file (base64 raw private key); with ``create`` make it, mode 0600, if it is missing.

    Processes starting at once agree on one key: each writes its candidate to a file of its own and links it
    to ``path`` only if ``path`` does not exist yet (``link`` is atomic and never replaces), then reads back
    whichever key won."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"server signing key {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _write_new(path, b64e(Signer.generate().private_raw()) + "\n", 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made the key first: use that one
        finally:
            tmp.unlink()
    signer = Signer.from_b64(path.read_text(encoding="ascii").strip())
    pub = Path(str(path) + ".pub")
    expected = b64e(signer.public_raw()) + "\n"
    if not pub.exists() or pub.read_text(encoding="ascii") != expected:
        os.replace(_write_new(pub, expected, 0o644), pub)
    return signer
