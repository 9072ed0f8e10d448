"""The server's Ed25519 signing key (signs acks and datasets), made on first start; its public half is
written next to it as ``<file>.pub`` (base64 raw) for provisioning devices."""

from __future__ import annotations

import os
from pathlib import Path

from core.sync.signing import Signer, b64e


def load_server_signer(path: Path, create: bool = True) -> Signer:
    """Read the key file (base64 raw private key); with ``create`` make it, mode 0600, if it is missing."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"server signing key {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate()
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(b64e(signer.private_raw()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    signer = Signer.from_b64(path.read_text(encoding="ascii").strip())
    pub = Path(str(path) + ".pub")
    expected = b64e(signer.public_raw()) + "\n"
    if not pub.exists() or pub.read_text(encoding="ascii") != expected:
        pub.write_text(expected, encoding="ascii")
    return signer
