"""Down-sync of signed, versioned datasets (tariffs/MRP/articles, device configuration, unpaid-fines list).

The server signs a manifest ``{dataset, version, valid_from, sha256, size, created_at}`` with its
manifest key; the content travels next to it. The device checks the signature against its pinned server
keys, the sha256 and size of the content, and refuses any version not newer than the one in use.
Wire form (topic ``pd/v1/{d}/down/ref``)::

    {"v":1,"m":b64(manifest bytes),"s":b64(sig),"k":kid,"c":b64(content)}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.sync.envelope import WIRE_VERSION, EnvelopeError, canonical_json, sha256_hex
from core.sync.signing import DOMAIN_MANIFEST, KeyRing, Signer, b64d, b64e

MAX_DATASET_BYTES = 1024 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KNOWN_DATASETS = ("tariffs", "device_config", "unpaid_fines")


class Manifest(BaseModel):
    """What the server signs about one dataset version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=_NAME.pattern)
    version: int = Field(ge=1)
    valid_from: AwareDatetime | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=MAX_DATASET_BYTES)
    created_at: AwareDatetime


class RollbackRefused(ValueError):
    """A dataset version not newer than the one in use."""


@dataclass(frozen=True)
class SignedDataset:
    """A manifest's exact signed bytes, its signature and key id, and the content."""

    manifest_bytes: bytes
    sig: bytes
    kid: str
    content: bytes

    @property
    def manifest(self) -> Manifest:
        return Manifest.model_validate_json(self.manifest_bytes)

    def to_wire(self) -> bytes:
        return canonical_json(
            {
                "v": WIRE_VERSION,
                "m": b64e(self.manifest_bytes),
                "s": b64e(self.sig),
                "k": self.kid,
                "c": b64e(self.content),
            }
        )


def sign_dataset(
    signer: Signer,
    dataset: str,
    version: int,
    content: bytes,
    created_at: datetime,
    valid_from: datetime | None = None,
) -> SignedDataset:
    """Server side: make and sign the manifest of ``content`` as ``dataset`` at ``version``."""
    if len(content) > MAX_DATASET_BYTES:
        raise ValueError(f"dataset {dataset} is {len(content)} bytes, limit {MAX_DATASET_BYTES}")
    manifest = Manifest(
        dataset=dataset,
        version=version,
        valid_from=valid_from,
        sha256=sha256_hex(content),
        size=len(content),
        created_at=created_at,
    )
    data = canonical_json(manifest.model_dump(mode="json"))
    return SignedDataset(data, signer.sign(DOMAIN_MANIFEST, data), signer.kid, content)


def open_dataset(data: bytes, keys: KeyRing) -> tuple[Manifest, SignedDataset]:
    """Device side: check wrapper, signature, sha256 and size (``EnvelopeError`` or ``BadSignature``)."""
    if len(data) > 2 * MAX_DATASET_BYTES:
        raise EnvelopeError("oversized", f"dataset message is {len(data)} bytes")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("malformed", f"dataset message is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != {"v", "m", "s", "k", "c"}:
        raise EnvelopeError("malformed", "dataset message must have exactly 'v', 'm', 's', 'k', 'c'")
    if obj["v"] != WIRE_VERSION:
        raise EnvelopeError("unknown_version", f"wire version {obj['v']!r} unknown")
    if not isinstance(obj["k"], str):
        raise EnvelopeError("malformed", "'k' must be a key id string")
    try:
        parts = (b64d(obj["m"], "manifest"), b64d(obj["s"], "signature"), b64d(obj["c"], "content"))
        signed = SignedDataset(parts[0], parts[1], obj["k"], parts[2])
    except ValueError as exc:
        raise EnvelopeError("malformed", str(exc)) from None
    keys.verify(signed.kid, DOMAIN_MANIFEST, signed.manifest_bytes, signed.sig)
    try:
        manifest = signed.manifest
    except ValidationError as exc:
        raise EnvelopeError("malformed", f"manifest: {exc.errors()[0]['msg']}") from None
    if len(signed.content) != manifest.size or sha256_hex(signed.content) != manifest.sha256:
        what = f"{manifest.dataset} v{manifest.version}"
        raise EnvelopeError("corrupt", f"{what}: content does not match its manifest")
    return manifest, signed


def check_newer(manifest: Manifest, current_version: int | None) -> None:
    """Refuse a version that is not newer than the one in use."""
    if current_version is not None and manifest.version <= current_version:
        raise RollbackRefused(
            f"{manifest.dataset} v{manifest.version} refused: v{current_version} is in use (no rollbacks)"
        )
