"""The fines API for other systems, under ``/api/fines``:

- ``POST /import`` (key with scope ``import``): fines from camera systems and the like (``issuing``);
- ``GET /unpaid?iin=…`` (scope ``lookup``): count, total due and oldest date of a person's unpaid fines;
  rate-limited per key, every answer audited;
- ``POST /payments`` (payment providers, HMAC-SHA256 per provider): a payment (``payments``);
- ``POST /notices/outcomes`` (scope ``post``): postal delivery outcomes (``postal``);
- ``GET /bailiff/batches/{id}`` and ``POST /bailiff/batches/{id}/ack`` (scope ``bailiff``).

Keys go in ``Authorization: Bearer pk_…``. A provider signs ``<X-Timestamp>\\n<body>`` with its key and sends
``X-Provider``, ``X-Timestamp`` (Unix seconds, within 5 minutes) and ``X-Signature`` (hex). Bodies are read up
to a small bound before anything else; JSON is checked by pydantic models. Errors: 400 malformed, 401 no valid
key or signature, 404 unknown, 409 conflicting, 413 too large, 422 invalid fields (named), 429 rate-limited.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from core.iin import InvalidIin, parse_iin
from core.sync.signing import b64d, b64e
from server.db.base import transaction
from server.db.fine_payments import PaymentProvider
from server.fines import enforcement, issuing, lookup, payments, postal
from server.fines.api_keys import Client, authenticate
from server.fines.daily_run import import_and_start
from server.fines.runtime import runtime_of

router = APIRouter(prefix="/api/fines", tags=["fines"])
MAX_IMPORT_BYTES = 1024 * 1024
MAX_SMALL_BODY = 16 * 1024
MAX_OUTCOMES_BYTES = 1024 * 1024
SIGNATURE_WINDOW = timedelta(minutes=5)


async def read_bounded(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "error": e["msg"]}
            for e in exc.errors()[:20]
        ]
        raise HTTPException(422, {"reason": "invalid body", "errors": errors}) from None


def _client(scope: str) -> Any:
    def dependency(request: Request) -> Client:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else None
        with request.app.state.sessions() as session:
            client = authenticate(session, key, scope)
        if client is None:
            raise HTTPException(
                401, f"a valid API key with scope {scope!r} is needed", headers={"WWW-Authenticate": "Bearer"}
            )
        return client

    return dependency


ImportClient = Annotated[Client, Depends(_client("import"))]
LookupClient = Annotated[Client, Depends(_client("lookup"))]
PostClient = Annotated[Client, Depends(_client("post"))]
BailiffClient = Annotated[Client, Depends(_client("bailiff"))]


# --- imports ------------------------------------------------------------------------------------------------


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fines: list[issuing.FineImport] = Field(min_length=1, max_length=1000)


class ImportAnswer(BaseModel):
    results: list[issuing.ImportResult]


@router.post("/import", response_model=ImportAnswer)
async def import_fines(request: Request, client: ImportClient) -> ImportAnswer:
    req: ImportRequest = _parse(ImportRequest, await read_bounded(request, MAX_IMPORT_BYTES))
    runtime = runtime_of(request.app)

    def work() -> list[issuing.ImportResult]:
        with transaction(request.app.state.sessions) as session:
            return import_and_start(session, req.fines, runtime.work, runtime.now())

    return ImportAnswer(results=await run_in_threadpool(work))


# --- the unpaid look-up -------------------------------------------------------------------------------------


class UnpaidAnswer(BaseModel):
    iin: str
    count: int
    total_due_minor: int
    currency: str | None
    oldest: str | None


@router.get("/unpaid", response_model=UnpaidAnswer)
def unpaid(
    request: Request,
    client: LookupClient,
    iin: Annotated[str, Query(min_length=1, max_length=32, description="the person's IIN (12 digits)")],
) -> Any:
    runtime = runtime_of(request.app)
    wait = runtime.limiter.allow(client.name, client.per_minute)
    if wait:
        return JSONResponse(
            {"detail": f"rate limit of {client.per_minute} requests a minute"},
            status_code=429,
            headers={"Retry-After": str(max(1, int(wait + 0.999)))},
        )
    try:
        person = parse_iin(iin).value
    except InvalidIin as exc:
        raise HTTPException(422, {"field": "iin", "error": str(exc)}) from None
    now = runtime.now()
    remote = request.client.host if request.client else ""
    with transaction(request.app.state.sessions) as session:
        found = lookup.unpaid_summary(session, person)
        lookup.audit(session, client.name, found, remote, now)
    return UnpaidAnswer(
        iin=person,
        count=found.count,
        total_due_minor=found.total_due_minor,
        currency=found.currency,
        oldest=found.oldest.isoformat() if found.oldest else None,
    )


# --- provider payments --------------------------------------------------------------------------------------


def _provider_key(request: Request, name: str) -> bytes | None:
    with request.app.state.sessions() as session:
        row = session.get(PaymentProvider, name) if 0 < len(name) <= 32 else None
        if row is None or not row.active:
            return None
        return b64d(row.hmac_key, "provider key")


def provider_signature(key: bytes, timestamp: str, body: bytes) -> str:
    """What a provider sends as ``X-Signature``: hex HMAC-SHA256 of ``<timestamp>\\n<body>``."""
    return hmac.new(key, timestamp.encode("ascii") + b"\n" + body, hashlib.sha256).hexdigest()


@router.post("/payments", response_model=payments.PaymentAnswer)
async def provider_payment(request: Request) -> Any:
    body = await read_bounded(request, MAX_SMALL_BODY)
    name = request.headers.get("x-provider", "")
    stamp = request.headers.get("x-timestamp", "")
    given = request.headers.get("x-signature", "")
    runtime = runtime_of(request.app)
    key = await run_in_threadpool(_provider_key, request, name)
    expected = provider_signature(key, stamp, body) if key is not None and stamp.isdigit() else None
    if expected is None or not hmac.compare_digest(expected, given.lower()):
        raise HTTPException(401, "unknown provider or bad signature (X-Provider, X-Timestamp, X-Signature)")
    skew = abs(runtime.now().timestamp() - int(stamp))
    if skew > SIGNATURE_WINDOW.total_seconds():
        raise HTTPException(401, f"X-Timestamp is {int(skew)} s away from the server's clock (limit 300 s)")
    req: payments.ProviderPaymentIn = _parse(payments.ProviderPaymentIn, body)
    digest = hashlib.sha256(req.model_dump_json().encode()).hexdigest()

    try:
        answer = await run_in_threadpool(
            record_once, request.app.state.sessions, name, req, digest, runtime.now()
        )
    except payments.PaymentConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return JSONResponse(answer.model_dump(mode="json"), status_code=200 if answer.repeated else 201)


def record_once(
    sessions: Any, provider: str, req: payments.ProviderPaymentIn, digest: str, now: Any
) -> payments.PaymentAnswer:
    """Record a payment; when a concurrent request with the same reference stored it first, the unique index
    refuses ours, and ours reads the stored answer (``repeated``)."""
    for attempt in (1, 2):
        try:
            with transaction(sessions) as session:
                return payments.record_payment(session, provider, req, digest, now)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- postal outcomes ----------------------------------------------------------------------------------------


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[postal.DeliveryOutcome] = Field(min_length=1, max_length=5000)


class OutcomesAnswer(BaseModel):
    results: list[postal.OutcomeResult]


@router.post("/notices/outcomes", response_model=OutcomesAnswer)
async def notice_outcomes(request: Request, client: PostClient) -> OutcomesAnswer:
    req: OutcomesRequest = _parse(OutcomesRequest, await read_bounded(request, MAX_OUTCOMES_BYTES))
    runtime = runtime_of(request.app)

    def work() -> list[postal.OutcomeResult]:
        results = []
        for o in req.outcomes:  # each on its own: a refused one does not hold up the others
            with transaction(request.app.state.sessions) as session:
                results.append(postal.apply_outcome(session, o, "api", runtime.now()))
        return results

    return OutcomesAnswer(results=await run_in_threadpool(work))


# --- bailiff ------------------------------------------------------------------------------------------------


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=200, description="the bailiff's registration number")


@router.get("/bailiff/batches/{batch_id}")
def bailiff_batch(request: Request, batch_id: int, client: BailiffClient) -> Any:
    signer = runtime_of(request.app).work.signer
    with request.app.state.sessions() as session:
        found = enforcement.batch_export(session, batch_id, b64e(signer.public_raw()))
    if found is None:
        raise HTTPException(404, f"no hand-over batch {batch_id}")
    return found


@router.post("/bailiff/batches/{batch_id}/ack")
async def bailiff_ack(request: Request, batch_id: int, client: BailiffClient) -> Any:
    req: AckRequest = _parse(AckRequest, await read_bounded(request, MAX_SMALL_BODY))
    runtime = runtime_of(request.app)

    def work() -> dict[str, Any]:
        with transaction(request.app.state.sessions) as session:
            batch = enforcement.acknowledge(session, batch_id, client.name, req.reference, runtime.now())
            return {"batch": batch.id, "acknowledged_at": batch.acknowledged_at.isoformat() if batch.acknowledged_at else None,
                    "by": batch.acknowledged_by, "reference": batch.ack_reference}  # fmt: skip

    try:
        return await run_in_threadpool(work)
    except enforcement.AckRefused as exc:
        raise HTTPException(404 if "no hand-over batch" in str(exc) else 409, str(exc)) from None
