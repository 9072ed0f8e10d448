"""The signed documents a fine's lifecycle hands to the bailiff (KZ) or the enforcement bureau (GE).

A document is canonical JSON (sorted keys, no spaces, UTF-8) of ``EnforcementDocumentBody``; the server signs
exactly those bytes with its Ed25519 key under the domain ``DOMAIN`` (``pk-enforcement-v1 || 0x00 || body``).
``kind`` is ``enforcement`` (collect this fine) or ``recall`` (stop: it was paid after the hand-over). Anyone
holding the server's public key can check a document with ``verify_document``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.sync.envelope import canonical_json, sha256_hex
from core.sync.signing import KeyRing, Signer, b64d, b64e

DOMAIN = b"pk-enforcement-v1"


class EnforcementDocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["enforcement", "recall"]
    document_no: str  # "<fine number>/<kind>"
    jurisdiction: str
    made_on: date
    fine_number: str
    article: str
    offence_date: date
    issued_on: date
    person_id: str
    person_name: str
    plate: str
    currency: str
    full_minor: int
    surcharge_minor: int
    amount_minor: int  # to collect (enforcement) or that was paid (recall)
    paid_on: date | None = None
    rules: str
    tariff: str
    basis: str


def sign_document(signer: Signer, body: EnforcementDocumentBody) -> tuple[str, str, str]:
    """``(canonical JSON text, sha256 hex, base64 signature)`` of ``body``."""
    data = canonical_json(body.model_dump(mode="json"))
    return data.decode("utf-8"), sha256_hex(data), b64e(signer.sign(DOMAIN, data))


def sign_fields(signer: Signer, fields: dict[str, Any]) -> tuple[str, str, str]:
    """``sign_document`` for fields already JSON-ready (dates as ISO text), without building the model: the
    daily run signs thousands. Exactly the fields of ``EnforcementDocumentBody`` (checked by name)."""
    if fields.keys() != _FIELDS:
        raise ValueError(f"document fields differ from the schema: {sorted(fields.keys() ^ _FIELDS)}")
    data = canonical_json(fields)
    return data.decode("utf-8"), sha256_hex(data), b64e(signer.sign(DOMAIN, data))


def verify_document(keys: KeyRing, kid: str, body: str, sig_b64: str) -> EnforcementDocumentBody:
    """Check a document's signature and shape; ``BadSignature`` or ``ValidationError`` when it is not genuine."""
    data = body.encode("utf-8")
    keys.verify(kid, DOMAIN, data, b64d(sig_b64, "signature"))
    return EnforcementDocumentBody.model_validate_json(data)


_FIELDS = frozenset(EnforcementDocumentBody.model_fields)
