"""receipt_job v2: each receipt event the device syncs says how that copy was printed (duplicate number, the
signed code of its QR, IIN masking, time zone, unit, software version), so the server draws the very receipt
the device printed, with the device's layout, from the synced rows (the evidence export)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from core.receipt_code import verify_receipt_code
from core.receipt_layout import render_copy
from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message
from core.sync.signing import Signer
from edge.db import payments as device_payments
from edge.db import protocols as device_protocols
from edge.identity import DeviceIdentity
from edge.sync.outbox import OutboxContent, OutboxRecord, seal_pending
from server.db import protocols as server_protocols
from server.db.devices import Device
from server.db.sync import ReceiptEvent
from server.evidence.receipts import receipt_copies
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

from .conftest import PROTOCOL_NO, RigFactory


def _copy_rows(device: sessionmaker[Session], server: sessionmaker[Session], identity: DeviceIdentity) -> None:
    """The device's officer, protocol and payment, field by field, as the ingest stores them."""
    now = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)

    def fields(row: object, into: type) -> dict[str, object]:
        """The row's values for the columns the server keeps (an officer's PIN hash never leaves the device)."""
        kept = {c.key for c in inspect(into).column_attrs}
        return {c.key: getattr(row, c.key) for c in inspect(row).mapper.column_attrs if c.key in kept}

    with device() as d, server() as s, s.begin():
        s.add(Device(device_id=identity.device_id, kid=identity.kid, public_key_b64=identity.public_key_b64,
                     mqtt_username=identity.device_id.lower(), created_at=now))  # fmt: skip
        for officer in d.scalars(select(device_protocols.Officer)):
            s.add(server_protocols.Officer(**fields(officer, server_protocols.Officer)))
        for protocol in d.scalars(select(device_protocols.Protocol)):
            s.add(server_protocols.Protocol(**fields(protocol, server_protocols.Protocol), received_at=now))
        for payment in d.scalars(select(device_payments.Payment)):
            s.add(server_protocols.Payment(**fields(payment, server_protocols.Payment), device_id=identity.device_id, received_at=now))


def _sync_receipt_events(device: sessionmaker[Session], server: sessionmaker[Session], identity: DeviceIdentity) -> list[dict[str, object]]:
    signer = Signer(identity.private_key)
    with device() as session, session.begin():
        seal_pending(session, identity.device_id, signer)
    with device() as session:
        rows = session.execute(
            select(OutboxContent.payload, OutboxContent.body).join(OutboxRecord, OutboxRecord.seq == OutboxContent.seq)
            .where(OutboxRecord.record_type == "receipt_job").order_by(OutboxRecord.seq)
        ).all()  # fmt: skip
    message = Incoming(up_topic(identity.device_id, "receipt_job"), encode_batch_message(signer, [r.payload for r in rows]))
    with server() as session, session.begin():
        outcome = ingest_batch(session, [message], DeviceRegistry(server), datetime.now(UTC))
    assert outcome.dead_letters == 0, outcome
    return [json.loads(r.body) for r in rows]


def test_the_server_draws_the_very_receipt_the_device_printed(
    make_rig: RigFactory, server_sessions: sessionmaker[Session], identity: DeviceIdentity
) -> None:
    rig = make_rig("kz1048-80mm", "tcp")
    assert rig.service.print_receipts(rig.payment_id).complete
    _copy_rows(rig.sessions, server_sessions, identity)
    bodies = _sync_receipt_events(rig.sessions, server_sessions, identity)
    printed = [b for b in bodies if b["event"] == "printed"]
    assert [(b["copy_no"], b["duplicate_no"], b["mask_iin"], b["timezone"]) for b in printed] == [
        (1, 0, True, "Asia/Almaty"), (2, 0, False, "Asia/Almaty"),
    ]  # fmt: skip
    claim = verify_receipt_code(str(printed[0]["verify_code"]), identity.private_key.public_key())
    assert (claim.protocol_no, claim.amount_minor) == (PROTOCOL_NO, 1081250)
    (qr,) = rig.store.receipts[0].qr_codes()
    assert qr.endswith("/r/" + str(printed[0]["verify_code"])), "the code synced is the one printed"

    with server_sessions() as session:
        events = list(session.scalars(select(ReceiptEvent).order_by(ReceiptEvent.occurred_at)))
        assert {e.verify_code for e in events if e.event == "printed"} == {printed[0]["verify_code"]}
        protocol = session.get(server_protocols.Protocol, PROTOCOL_NO)
        payment = session.scalars(select(server_protocols.Payment)).one()
        officer = session.get(server_protocols.Officer, payment.officer_badge)
        assert protocol is not None
        copies = receipt_copies(protocol, payment, officer, events, "https://verify.example.kz", "Asia/Almaty")
    with rig.sessions() as session:
        data = rig.service._load(session, rig.payment_id)
    for copy_no in (1, 2):
        server_data, spec, _ = copies[copy_no]
        assert render_copy(server_data, spec) == rig.service.document(data, copy_no, 0), (
            f"copy {copy_no}: the server's receipt is the device's, block for block"
        )
