"""SMS over SMPP 3.4 through ``smpplib``: the gateway that sends (bound as transmitter) and the listener that
takes delivery receipts (bound as receiver).

**Sending.** A text goes out in UCS-2 (data coding 8, Kazakh, Russian and Georgian need it), split by
``smpplib.gsm.make_parts`` into parts with a concatenation header when it is long; each part is one
``submit_sm`` asking for a delivery receipt, and its ``submit_sm_resp`` (matched by sequence number) gives
that part's message id. An answer for another sequence (a late or repeated one) is ignored; an
``enquire_link`` from the centre is answered. A part refused before any was taken: ``REFUSED``; no answer in
``timeout_s``, a lost connection, or a refusal after some parts were taken: ``CUT_OFF`` (never repeated).

**Receipts.** ``SmppReceiptListener`` keeps a receiver bound (reconnecting with backoff) and hands every
delivery receipt (``deliver_sm`` with esm_class 0x04) to a callback, answering ``deliver_sm_resp``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import smpplib.client
import smpplib.consts as C
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from core.structured_log import log_event
from server.fines.smpp_receipts import Receipt, parse_receipt
from server.fines.sms_gateway import OutgoingSms, SendOutcome, SendResult

log = logging.getLogger(__name__)
KEEPALIVE_S = 30.0


@dataclass(frozen=True)
class SmppTarget:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""

    @classmethod
    def from_url(cls, url: str, system_type: str = "") -> SmppTarget:
        u = urlparse(url)
        if u.scheme != "smpp" or not u.hostname:
            raise ValueError(f"SMPP URL {url!r}: expected smpp://system_id:password@host:port")
        return cls(
            u.hostname, u.port or 2775, unquote(u.username or ""), unquote(u.password or ""), system_type
        )


def _connect(target: SmppTarget, timeout_s: float, bind: str) -> smpplib.client.Client:
    client = smpplib.client.Client(target.host, target.port, timeout=timeout_s, allow_unknown_opt_params=True)
    client.connect()
    try:
        getattr(client, bind)(
            system_id=target.system_id, password=target.password, system_type=target.system_type
        )
    except Exception:
        client.disconnect()
        raise
    return client


class SmppGateway:
    """Sends over one transmitter bind, made when first needed and again after it was lost."""

    idempotent = False
    receipts = True
    batch_size = 1  # claimed, sent and recorded one at a time: a stop cuts off at most one SMS

    def __init__(self, target: SmppTarget, source_addr: str, timeout_s: float = 10.0) -> None:
        self.target, self.source_addr, self.timeout_s = target, source_addr, timeout_s
        self._client: smpplib.client.Client | None = None
        self._last_used = 0.0

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.disconnect()
        self._client = None

    def _ready(self) -> smpplib.client.Client:
        if self._client is not None and time.monotonic() - self._last_used > KEEPALIVE_S:
            pdu = smpplib.smpp.make_pdu("enquire_link", client=self._client)
            try:
                self._client.send_pdu(pdu)
                if self._await(self._client, pdu.sequence, "enquire_link_resp")[0] != "ok":
                    self._drop()
            except (smpplib.exceptions.ConnectionError, OSError):
                self._drop()
        if self._client is None:
            self._client = _connect(self.target, self.timeout_s, "bind_transmitter")
            log_event(log, "sms.smpp.bound", host=self.target.host, port=self.target.port)
        self._last_used = time.monotonic()
        return self._client

    def _await(self, client: smpplib.client.Client, seq: int, command: str) -> tuple[str, Any]:
        """Read until the answer to ``seq``: ("ok", pdu), ("error", status) or ("lost", reason)."""
        while True:
            try:
                pdu = client.read_pdu()
            except TimeoutError:
                return "lost", f"no answer within {self.timeout_s} s"
            except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
                return "lost", f"connection: {exc or type(exc).__name__}"
            if pdu is None:
                continue
            if pdu.command == "enquire_link":
                resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
                resp.sequence = pdu.sequence
                client.send_pdu(resp)
                continue
            if pdu.command == "unbind":
                return "lost", "the SMS centre unbound"
            if pdu.sequence != seq:
                log_event(
                    log, "sms.smpp.stray_answer", command=pdu.command, sequence=pdu.sequence, waiting_for=seq
                )
                continue
            if pdu.command == "generic_nack" or pdu.status != C.SMPP_ESME_ROK:
                return "error", int(pdu.status)
            if pdu.command == command:
                return "ok", pdu

    def send(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        results: list[SendResult] = []
        for m in messages:
            try:
                client = self._ready()
            except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
                self._drop()
                results.append(SendResult(SendOutcome.REFUSED, (), f"bind: {exc or type(exc).__name__}"))
                continue
            results.append(self._send_one(client, m))
        return results

    def _send_one(self, client: smpplib.client.Client, m: OutgoingSms) -> SendResult:
        parts, coding, esm_class = smpplib.gsm.make_parts(m.text, encoding=C.SMPP_ENCODING_ISO10646)
        alnum = not self.source_addr.isdigit()
        ids: list[str] = []
        for part in parts:
            pdu = smpplib.smpp.make_pdu(
                "submit_sm",
                client=client,
                source_addr_ton=C.SMPP_TON_ALNUM if alnum else C.SMPP_TON_INTL,
                source_addr_npi=C.SMPP_NPI_UNK if alnum else C.SMPP_NPI_ISDN,
                source_addr=self.source_addr,
                dest_addr_ton=C.SMPP_TON_INTL,
                dest_addr_npi=C.SMPP_NPI_ISDN,
                destination_addr=m.phone.lstrip("+"),
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=1,
            )
            try:
                client.send_pdu(pdu)
            except (smpplib.exceptions.ConnectionError, OSError) as exc:
                self._drop()
                outcome = SendOutcome.CUT_OFF if ids else SendOutcome.REFUSED
                return SendResult(outcome, tuple(ids), f"write: {exc or type(exc).__name__}")
            kind, value = self._await(client, pdu.sequence, "submit_sm_resp")
            if kind == "ok":
                ids.append(value.message_id.decode("ascii", "replace") if isinstance(value.message_id, bytes)
                           else str(value.message_id))  # fmt: skip
                continue
            if kind == "error":
                text = C.DESCRIPTIONS.get(value, "unknown status")
                outcome = SendOutcome.CUT_OFF if ids else SendOutcome.REFUSED
                return SendResult(outcome, tuple(ids), f"submit_sm refused: 0x{value:02X} {text}")
            self._drop()
            return SendResult(SendOutcome.CUT_OFF, tuple(ids), str(value))
        return SendResult(SendOutcome.ACCEPTED, tuple(ids))

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.unbind()
        self._drop()


class SmppReceiptListener:
    """A thread that keeps a receiver bound and hands each delivery receipt to ``on_receipt``."""

    def __init__(
        self,
        target: SmppTarget,
        on_receipt: Callable[[Receipt], object],
        timeout_s: float = 10.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self.target, self.on_receipt = target, on_receipt
        self.timeout_s, self.backoff_max_s = timeout_s, backoff_max_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smpp-receipts", daemon=True)
        self._client: smpplib.client.Client | None = None
        self.bound = threading.Event()
        self.received = 0

    def start(self) -> SmppReceiptListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None and client._socket is not None:
            with contextlib.suppress(OSError):
                client._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def _handle(self, pdu: Any) -> int:
        if not (int(pdu.esm_class or 0) & 0x04):
            return C.SMPP_ESME_ROK  # a mobile-originated message: not ours to read
        receipt = parse_receipt(pdu.receipted_message_id, pdu.short_message or b"")
        if receipt is None:
            log_event(log, "sms.receipt.unreadable", text=repr((pdu.short_message or b"")[:120]))
            return C.SMPP_ESME_ROK
        self.received += 1
        try:
            self.on_receipt(receipt)
        except Exception as exc:
            log.exception(
                "sms.receipt.failed", extra={"event": "sms.receipt.failed", "error": str(exc)[:300]}
            )
        return C.SMPP_ESME_ROK

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                client = _connect(self.target, self.timeout_s, "bind_receiver")
            except Exception as exc:
                log_event(log, "sms.receipts.bind_failed", error=str(exc)[:200])
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self._client, backoff = client, 0.5
            client.set_message_received_handler(self._handle)
            self.bound.set()
            try:
                while not self._stop.is_set():
                    client.read_once()  # a read timeout sends an enquire_link
            except Exception as exc:
                if not self._stop.is_set():
                    log_event(log, "sms.receipts.lost", error=str(exc)[:200])
            finally:
                self.bound.clear()
                with contextlib.suppress(Exception):
                    client.disconnect()
                self._client = None
