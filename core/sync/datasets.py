"""Down-sync of signed, versioned datasets (tariffs/MRP/articles, device configuration, unpaid-fines list).

The server signs a manifest ``{dataset, version, valid_from, sha256, size, created_at}`` with its
manifest key; the content travels next to it. The device checks the signature against its pinned server
keys, the sha256 and size of the content, and refuses any version not newer than the one in use.
Wire forms (topic ``pd/v1/{d}/down/ref``):

- up to ``MAX_DATASET_BYTES``, one message, exactly as before chunking existed::

    {"v":1,"m":b64(manifest bytes),"s":b64(sig),"k":kid,"c":b64(content)}

- larger (up to ``MAX_CHUNKED_DATASET_BYTES``), ``count`` messages, one per chunk::

    {"v":2,"m":b64(chunked manifest bytes),"s":b64(sig),"k":kid,"i":index,"c":b64(chunk)}

  The chunked manifest adds ``chunk_size`` and ``chunks`` (the sha256 of every chunk, in order) to the
  manifest, and is signed **once** per version. Every chunk message repeats it, so each chunk, in any order,
  carries dataset, version, index, count and the whole dataset's sha256 and is checked on arrival: the
  signature over the header, then its own sha256 against the signed list. One signature per version (not
  one per chunk) keeps the signing key's work at one operation per dataset version (it may sit in an HSM), and
  the signed chunk hashes let the device drop a forged chunk at once while keeping the slot open for the
  genuine one; a signature over the whole content alone could only tell at the end that *something* was
  wrong. The device reassembles by index, checks the whole content's sha256 and size again, and only then
  swaps the version in; a missing chunk leaves the previous version in use.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.sync.envelope import WIRE_VERSION, EnvelopeError, canonical_json, parse_json, sha256_hex
from core.sync.signing import DOMAIN_MANIFEST, KeyRing, Signer, b64d, b64e

MAX_DATASET_BYTES = 1024 * 1024  # largest dataset sent as one message (wire v1)
DATASET_CHUNK_BYTES = 512 * 1024  # chunk size of larger ones: ~0.7 MB per message after base64
MAX_CHUNKED_DATASET_BYTES = 64 * 1024 * 1024
MAX_CHUNKS = 1024
CHUNK_WIRE_VERSION = 2
MAX_REF_MESSAGE_BYTES = 2 * MAX_DATASET_BYTES
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KNOWN_DATASETS = ("tariffs", "device_config", "unpaid_fines", "officers")


class Manifest(BaseModel):
    """What the server signs about one dataset version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=_NAME.pattern)
    version: int = Field(ge=1)
    valid_from: AwareDatetime | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=MAX_DATASET_BYTES)
    created_at: AwareDatetime


class ChunkedManifest(BaseModel):
    """The manifest of a dataset sent in chunks: the whole content's sha256 and size plus every chunk's sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=_NAME.pattern)
    version: int = Field(ge=1)
    valid_from: AwareDatetime | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=MAX_CHUNKED_DATASET_BYTES)
    created_at: AwareDatetime
    chunk_size: int = Field(ge=1, le=MAX_DATASET_BYTES)
    chunks: tuple[str, ...] = Field(min_length=1, max_length=MAX_CHUNKS)

    @model_validator(mode="after")
    def _chunks_cover_size(self) -> ChunkedManifest:
        expected = -(-self.size // self.chunk_size)
        if len(self.chunks) != expected:
            raise ValueError(
                f"{len(self.chunks)} chunk hashes for {self.size} bytes in chunks of {self.chunk_size}"
            )
        if any(not re.fullmatch(r"[0-9a-f]{64}", h) for h in self.chunks):
            raise ValueError("chunk hashes must be 64 lower-case hex digits")
        return self

    @property
    def count(self) -> int:
        return len(self.chunks)

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)


AnyManifest = Manifest | ChunkedManifest


class RollbackRefused(ValueError):
    """A dataset version not newer than the one in use."""


@dataclass(frozen=True)
class SignedDataset:
    """A manifest's exact signed bytes, its signature and key id, and the (whole) content."""

    manifest_bytes: bytes
    sig: bytes
    kid: str
    content: bytes

    @property
    def manifest(self) -> AnyManifest:
        return parse_manifest(self.manifest_bytes)

    @property
    def chunked(self) -> bool:
        return isinstance(self.manifest, ChunkedManifest)

    def to_wire(self) -> bytes:
        """The one v1 message of a dataset that is not chunked (``ValueError`` for a chunked one)."""
        if self.chunked:
            raise ValueError("a chunked dataset goes out as several messages: use wire_messages()")
        return canonical_json(
            {
                "v": WIRE_VERSION,
                "m": b64e(self.manifest_bytes),
                "s": b64e(self.sig),
                "k": self.kid,
                "c": b64e(self.content),
            }
        )

    def wire_messages(self, held: Collection[int] = ()) -> Iterator[bytes]:
        """Every message that carries this version: one v1 message, or one v2 message per chunk, leaving
        out the chunks in ``held`` (those the device said it already has)."""
        manifest = self.manifest
        if not isinstance(manifest, ChunkedManifest):
            yield self.to_wire()
            return
        head = {"v": CHUNK_WIRE_VERSION, "m": b64e(self.manifest_bytes), "s": b64e(self.sig), "k": self.kid}
        for index in range(manifest.count):
            if index in held:
                continue
            start, end = manifest.chunk_bounds(index)
            yield canonical_json({**head, "i": index, "c": b64e(self.content[start:end])})


@dataclass(frozen=True)
class DatasetChunk:
    """One verified chunk: its signature checked over the header, its sha256 checked against the header."""

    manifest: ChunkedManifest
    manifest_bytes: bytes
    sig: bytes
    kid: str
    index: int
    data: bytes


def parse_manifest(data: bytes) -> AnyManifest:
    """The manifest model of signed manifest bytes (chunked when it lists chunk hashes)."""
    obj = parse_json(data, "manifest", MAX_REF_MESSAGE_BYTES)
    if isinstance(obj, dict) and "chunks" in obj:
        return ChunkedManifest.model_validate(obj)
    return Manifest.model_validate(obj)


def sign_dataset(
    signer: Signer,
    dataset: str,
    version: int,
    content: bytes,
    created_at: datetime,
    valid_from: datetime | None = None,
    chunk_size: int | None = None,
) -> SignedDataset:
    """Server side: make and sign the manifest of ``content`` as ``dataset`` at ``version``.

    Content up to ``MAX_DATASET_BYTES`` gets the single-message manifest, as it always did; larger content
    (or any content when ``chunk_size`` is given) a chunked manifest with chunks of ``chunk_size`` bytes.
    """
    size = len(content)
    if size > MAX_CHUNKED_DATASET_BYTES:
        raise ValueError(f"dataset {dataset} is {size} bytes, limit {MAX_CHUNKED_DATASET_BYTES}")
    fields: dict[str, Any] = {
        "dataset": dataset,
        "version": version,
        "valid_from": valid_from,
        "sha256": sha256_hex(content),
        "size": size,
        "created_at": created_at,
    }
    model: AnyManifest
    if chunk_size is None and size <= MAX_DATASET_BYTES:
        model = Manifest(**fields)
    else:
        step = chunk_size or DATASET_CHUNK_BYTES
        if not 1 <= step <= MAX_DATASET_BYTES:
            raise ValueError(f"chunk size {step} bytes: use 1..{MAX_DATASET_BYTES}")
        if size == 0:
            raise ValueError(f"dataset {dataset} is empty: nothing to chunk")
        hashes = tuple(sha256_hex(content[i : i + step]) for i in range(0, size, step))
        if len(hashes) > MAX_CHUNKS:
            raise ValueError(f"dataset {dataset} would need {len(hashes)} chunks, limit {MAX_CHUNKS}")
        model = ChunkedManifest(**fields, chunk_size=step, chunks=hashes)
    data = canonical_json(model.model_dump(mode="json"))
    return SignedDataset(data, signer.sign(DOMAIN_MANIFEST, data), signer.kid, content)


def _read_wire(data: bytes, keys: KeyRing) -> tuple[dict[str, Any], bytes, bytes, str, bytes]:
    """Shared first steps of both wire forms: size, JSON, fields, base64 and the manifest signature."""
    obj = parse_json(data, "dataset message", MAX_REF_MESSAGE_BYTES)
    if not isinstance(obj, dict) or "v" not in obj:
        raise EnvelopeError("malformed", "dataset message must be an object with a 'v'")
    if obj["v"] == WIRE_VERSION:
        expected = {"v", "m", "s", "k", "c"}
    elif obj["v"] == CHUNK_WIRE_VERSION:
        expected = {"v", "m", "s", "k", "i", "c"}
    else:
        raise EnvelopeError("unknown_version", f"wire version {obj['v']!r} unknown")
    if set(obj) != expected:
        raise EnvelopeError("malformed", f"dataset message v{obj['v']} must have exactly {sorted(expected)}")
    if not isinstance(obj["k"], str):
        raise EnvelopeError("malformed", "'k' must be a key id string")
    try:
        manifest, sig, content = (
            b64d(obj["m"], "manifest"),
            b64d(obj["s"], "signature"),
            b64d(obj["c"], "content"),
        )
    except ValueError as exc:
        raise EnvelopeError("malformed", str(exc)) from None
    keys.verify(obj["k"], DOMAIN_MANIFEST, manifest, sig)
    return obj, manifest, sig, obj["k"], content


def _check_whole(manifest: AnyManifest, content: bytes) -> None:
    if len(content) != manifest.size or sha256_hex(content) != manifest.sha256:
        what = f"{manifest.dataset} v{manifest.version}"
        raise EnvelopeError("corrupt", f"{what}: content does not match its manifest")


def open_ref(data: bytes, keys: KeyRing) -> tuple[Manifest, SignedDataset] | DatasetChunk:
    """Device side: a verified whole dataset (v1) or a verified chunk (v2); ``EnvelopeError``/``BadSignature``."""
    obj, manifest_bytes, sig, kid, content = _read_wire(data, keys)
    try:
        manifest = parse_manifest(manifest_bytes)
    except (ValidationError, ValueError) as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise EnvelopeError("malformed", f"manifest: {msg}") from None
    if obj["v"] == WIRE_VERSION:
        if not isinstance(manifest, Manifest):
            raise EnvelopeError("malformed", "a chunked manifest cannot travel as one v1 message")
        _check_whole(manifest, content)
        return manifest, SignedDataset(manifest_bytes, sig, kid, content)
    if not isinstance(manifest, ChunkedManifest):
        raise EnvelopeError("malformed", "a chunk message needs a chunked manifest")
    index = obj["i"]
    if type(index) is not int or not 0 <= index < manifest.count:
        raise EnvelopeError("malformed", f"chunk index {index!r} outside 0..{manifest.count - 1}")
    start, end = manifest.chunk_bounds(index)
    if len(content) != end - start or sha256_hex(content) != manifest.chunks[index]:
        what = f"{manifest.dataset} v{manifest.version} chunk {index}/{manifest.count}"
        raise EnvelopeError("corrupt", f"{what}: bytes do not match the signed chunk hash")
    return DatasetChunk(manifest, manifest_bytes, sig, kid, index, content)


def open_dataset(data: bytes, keys: KeyRing) -> tuple[Manifest, SignedDataset]:
    """Device side: check a single-message (v1) dataset: wrapper, signature, sha256 and size."""
    opened = open_ref(data, keys)
    if isinstance(opened, DatasetChunk):
        raise EnvelopeError("unexpected", "a dataset chunk where a whole dataset was expected")
    return opened


def check_newer(manifest: AnyManifest, current_version: int | None) -> None:
    """Refuse a version that is not newer than the one in use."""
    if current_version is not None and manifest.version <= current_version:
        raise RollbackRefused(
            f"{manifest.dataset} v{manifest.version} refused: v{current_version} is in use (no rollbacks)"
        )


@dataclass
class _Partial:
    manifest: ChunkedManifest
    manifest_bytes: bytes
    sig: bytes
    kid: str
    parts: dict[int, bytes] = field(default_factory=dict)


class DatasetAssembler:
    """Verified chunks of datasets being received, in memory: at most one version per dataset.

    Partial versions outlive a lost link: the ``sync_ref`` of every connect names the chunks held, and the
    server sends only the others, so a link that drops every few chunks still completes a large dataset.
    The device also keeps each chunk in its database and refills an assembler from it after a restart
    (``edge.sync.datasets.restore_chunks``); nothing depends on them: without them every chunk comes again.
    """

    def __init__(self) -> None:
        self._partials: dict[str, _Partial] = {}

    def pending(self) -> dict[str, tuple[int, int, int]]:
        """``{dataset: (version, chunks held, count)}`` of versions still incomplete."""
        return {n: (p.manifest.version, len(p.parts), p.manifest.count) for n, p in self._partials.items()}

    def held(self) -> dict[str, tuple[int, list[int]]]:
        """``{dataset: (version, indexes of the chunks held)}``: what a ``sync_ref`` asks not to resend."""
        return {n: (p.manifest.version, sorted(p.parts)) for n, p in self._partials.items()}

    def add(self, chunk: DatasetChunk) -> SignedDataset | None:
        """Keep ``chunk``; the whole dataset (checked again) once its last chunk is in, else None.

        A duplicate chunk changes nothing. A chunk of a newer version drops the older partial one; one of an
        older version, or a second manifest for the same version, is refused (``RollbackRefused`` /
        ``EnvelopeError``) and changes nothing.
        """
        m = chunk.manifest
        partial = self._partials.get(m.dataset)
        if partial is not None and partial.manifest_bytes != chunk.manifest_bytes:
            held = partial.manifest.version
            if m.version < held:
                raise RollbackRefused(f"{m.dataset} v{m.version} chunk refused: v{held} is being received")
            if m.version == held:
                raise EnvelopeError("conflict", f"{m.dataset} v{m.version}: a second, different manifest")
            partial = None
        if partial is None:
            partial = _Partial(m, chunk.manifest_bytes, chunk.sig, chunk.kid)
            self._partials[m.dataset] = partial
        partial.parts.setdefault(chunk.index, chunk.data)
        if len(partial.parts) < m.count:
            return None
        del self._partials[m.dataset]
        content = b"".join(partial.parts[i] for i in range(m.count))
        _check_whole(m, content)
        return SignedDataset(partial.manifest_bytes, partial.sig, partial.kid, content)
