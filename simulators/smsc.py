"""A small SMS centre speaking SMPP 3.4 on loopback, for the tests and the demo (no packaged one exists).

It has its own PDU codec (header, C-octet strings, TLVs; not smpplib's), so what it accepts is checked against
the specification independently of the client library. It answers

- ``bind_transmitter`` / ``bind_receiver`` / ``bind_transceiver`` (checking system_id and password),
- ``submit_sm`` → ``submit_sm_resp`` with a fresh message id, keeping every message and reassembling long
  ones from their UDH (``05 00 03 ref total part``),
- ``enquire_link``, ``unbind``, and ``generic_nack`` for anything else,

and sends ``deliver_sm`` delivery receipts to bound receivers when a message was asked for one
(``registered_delivery``): ``id:… sub:001 dlvrd:001 … stat:DELIVRD err:000 text:…`` in the text and the
``receipted_message_id`` (0x001E) and ``message_state`` (0x0427) TLVs, or the text only (``receipt_tlv=False``,
as some centres do). ``receipt(id, "UNDELIV")`` sends one by hand.

Fault modes (``mode``): ``ok``; ``fail`` (every submit refused with ESME_RSYSERR); ``slow`` (answers after
``delay_s``); ``twice`` (answers each submit twice); ``silent`` (never answers a submit).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

GENERIC_NACK = 0x80000000
BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x00000001, 0x00000002, 0x00000009
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x00000004, 0x00000005, 0x00000006, 0x00000015
RESP = 0x80000000
ESME_ROK, ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RSYSERR, ESME_RBINDFAIL = 0x00, 0x03, 0x04, 0x08, 0x0D
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE = 0x001E, 0x0427
MAX_PDU = 64 * 1024
MODES = ("ok", "fail", "slow", "twice", "silent")
_STATES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}


class PduError(ValueError):
    """Bytes that are not a well-formed PDU of the kind expected."""


def pack(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def cstr(text: str | bytes) -> bytes:
    data = text.encode("ascii") if isinstance(text, str) else text
    if b"\x00" in data:
        raise PduError("a C-octet string cannot hold NUL")
    return data + b"\x00"


class Reader:
    """Reads the fields of a PDU body in order; ``PduError`` when the body ends early or runs on."""

    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def cstring(self, limit: int) -> bytes:
        end = self.body.find(b"\x00", self.at, self.at + limit + 1)
        if end < 0:
            raise PduError(f"C-octet string at {self.at} longer than {limit} or unterminated")
        value, self.at = self.body[self.at : end], end + 1
        return value

    def octet(self) -> int:
        if self.at >= len(self.body):
            raise PduError("body ends early")
        self.at += 1
        return self.body[self.at - 1]

    def octets(self, n: int) -> bytes:
        if self.at + n > len(self.body):
            raise PduError("body ends early")
        self.at += n
        return self.body[self.at - n : self.at]

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.at < len(self.body):
            tag, length = struct.unpack(">HH", self.octets(4))
            found[tag] = self.octets(length)
        return found


@dataclass
class Submitted:
    """One submit_sm as received."""

    message_id: str
    system_id: str
    source: str
    destination: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    at: datetime

    @property
    def udh(self) -> tuple[int, int, int] | None:
        """(reference, total, part) of a concatenated part (UDHI set, IE 00), else None."""
        sm = self.short_message
        if self.esm_class & 0x40 and len(sm) >= 6 and sm[0] == 5 and sm[1] == 0 and sm[2] == 3:
            return sm[3], sm[4], sm[5]
        return None

    @property
    def payload(self) -> bytes:
        return self.short_message[6:] if self.udh else self.short_message

    def text(self) -> str:
        return self.payload.decode("utf-16-be" if self.data_coding == 8 else "latin-1")


def parse_submit(body: bytes) -> dict[str, Any]:
    r = Reader(body)
    out: dict[str, Any] = {"service_type": r.cstring(5)}
    out["source_ton"], out["source_npi"] = r.octet(), r.octet()
    out["source"] = r.cstring(20).decode("ascii", "replace")
    out["dest_ton"], out["dest_npi"] = r.octet(), r.octet()
    out["destination"] = r.cstring(20).decode("ascii", "replace")
    out["esm_class"], out["protocol_id"], out["priority"] = r.octet(), r.octet(), r.octet()
    out["schedule"], out["validity"] = r.cstring(16), r.cstring(16)
    out["registered_delivery"], out["replace"], out["data_coding"], out["default_msg"] = (
        r.octet(), r.octet(), r.octet(), r.octet(),
    )  # fmt: skip
    out["short_message"] = r.octets(r.octet())
    out["tlvs"] = r.tlvs()
    return out


def parse_bind(body: bytes) -> tuple[str, str, str]:
    r = Reader(body)
    system_id = r.cstring(15).decode("ascii", "replace")
    password = r.cstring(8).decode("ascii", "replace")
    system_type = r.cstring(12).decode("ascii", "replace")
    r.octet()  # interface_version
    r.octet(), r.octet()  # addr_ton, addr_npi
    r.cstring(40)  # address_range
    return system_id, password, system_type


def receipt_body(message: Submitted, stat: str, with_tlv: bool) -> bytes:
    stamp = message.at.strftime("%y%m%d%H%M")
    done = datetime.now(UTC).strftime("%y%m%d%H%M")
    text = (
        f"id:{message.message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{stamp} "
        f"done date:{done} stat:{stat} err:{'000' if stat == 'DELIVRD' else '001'} text:"
    ).encode("ascii") + message.payload[:20].decode(
        "utf-16-be" if message.data_coding == 8 else "latin-1", "replace"
    ).encode("ascii", "replace")
    text = text[:254]
    body = (
        cstr("")  # service_type
        + bytes([1, 1]) + cstr(message.destination)  # the receipt comes "from" the handset
        + bytes([5, 0]) + cstr(message.source)
        + bytes([0x04, 0, 0])  # esm_class: SMSC delivery receipt
        + cstr("") + cstr("")
        + bytes([0, 0, 0, 0, len(text)]) + text
    )  # fmt: skip
    if with_tlv:
        mid = cstr(message.message_id)
        body += struct.pack(">HH", TLV_RECEIPTED_MESSAGE_ID, len(mid)) + mid
        body += struct.pack(">HHB", TLV_MESSAGE_STATE, 1, _STATES.get(stat, 7))
    return body


@dataclass
class _Session:
    sock: socket.socket
    bound: int | None = None  # the bind command
    system_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    @property
    def receives(self) -> bool:
        return self.bound in (BIND_RECEIVER, BIND_TRANSCEIVER)


class SmsCentre:
    """The SMS centre; ``start()`` listens on ``host:port`` (0 = any free port, see ``port``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        system_id: str = "patrolkit",
        password: str = "secret",
        mode: str = "ok",
        delay_s: float = 0.0,
        receipts: bool = True,
        receipt_tlv: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.system_id, self.password = system_id, password
        self.mode, self.delay_s = mode, delay_s
        self.receipts, self.receipt_tlv = receipts, receipt_tlv
        self.messages: list[Submitted] = []
        self.refused = 0
        self.binds: list[tuple[str, int]] = []
        self._ids = itertools.count(0x1A2B00)
        self._lock = threading.Lock()
        self._sessions: list[_Session] = []
        centre = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                centre._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"smpp://{self.system_id}:{self.password}@{self.host}:{self.port}"

    def start(self) -> SmsCentre:
        self._thread = threading.Thread(target=self._server.serve_forever, name="smsc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            with contextlib.suppress(OSError):
                s.sock.shutdown(socket.SHUT_RDWR)
            s.sock.close()

    def __enter__(self) -> SmsCentre:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- what tests look at ---------------------------------------------------------------------------------

    def texts(self) -> list[tuple[str, str]]:
        """(destination, whole text) of every message, long ones reassembled from their parts."""
        with self._lock:
            messages = list(self.messages)
        whole: list[tuple[str, str]] = []
        parts: dict[tuple[str, int], dict[int, Submitted]] = {}
        for m in messages:
            udh = m.udh
            if udh is None:
                whole.append((m.destination, m.text()))
                continue
            ref, total, part = udh
            got = parts.setdefault((m.destination, ref), {})
            got[part] = m
            if len(got) == total:
                whole.append((m.destination, "".join(got[i].text() for i in range(1, total + 1))))
                del parts[(m.destination, ref)]
        return whole

    def receipt(self, message_id: str, stat: str = "DELIVRD") -> int:
        """Send a delivery receipt for ``message_id`` to every bound receiver; returns how many got it."""
        with self._lock:
            found = next((m for m in self.messages if m.message_id == message_id), None)
            receivers = [s for s in self._sessions if s.receives]
        if found is None:
            raise KeyError(message_id)
        body = receipt_body(found, stat, self.receipt_tlv)
        sent = 0
        for s in receivers:
            try:
                s.send(pack(DELIVER_SM, 0, next(self._ids) & 0x7FFFFFFF, body))
                sent += 1
            except OSError:
                pass
        return sent

    def wait_receivers(self, n: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(1 for s in self._sessions if s.receives) >= n:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"no {n} bound receiver(s) after {timeout} s")

    # --- the protocol ---------------------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        session = _Session(sock)
        with self._lock:
            self._sessions.append(session)
        try:
            while True:
                head = self._read(sock, 16)
                if head is None:
                    return
                length, command, _status, seq = struct.unpack(">IIII", head)
                if not 16 <= length <= MAX_PDU:
                    return  # not SMPP: drop the connection
                body = self._read(sock, length - 16) if length > 16 else b""
                if body is None:
                    return
                if not self._answer(session, command, seq, body):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)
            sock.close()

    @staticmethod
    def _read(sock: socket.socket, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _answer(self, session: _Session, command: int, seq: int, body: bytes) -> bool:
        """Answer one PDU; False to close the connection."""
        if command & RESP:
            return True  # deliver_sm_resp, enquire_link_resp: nothing to do
        if command in (BIND_TRANSMITTER, BIND_RECEIVER, BIND_TRANSCEIVER):
            try:
                system_id, password, _type = parse_bind(body)
            except PduError:
                session.send(pack(command | RESP, ESME_RBINDFAIL, seq))
                return False
            if session.bound is not None or (system_id, password) != (self.system_id, self.password):
                session.send(pack(command | RESP, ESME_RBINDFAIL, seq))
                return False
            session.bound, session.system_id = command, system_id
            with self._lock:
                self.binds.append((system_id, command))
            session.send(pack(command | RESP, ESME_ROK, seq, cstr("smsc-sim")))
            return True
        if command == ENQUIRE_LINK:
            session.send(pack(ENQUIRE_LINK | RESP, ESME_ROK, seq))
            return True
        if command == UNBIND:
            session.send(pack(UNBIND | RESP, ESME_ROK, seq))
            return False
        if command == SUBMIT_SM:
            return self._submit(session, seq, body)
        session.send(pack(GENERIC_NACK, ESME_RINVCMDID, seq))
        return True

    def _submit(self, session: _Session, seq: int, body: bytes) -> bool:
        if session.bound not in (BIND_TRANSMITTER, BIND_TRANSCEIVER):
            session.send(pack(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq, cstr("")))
            return True
        if self.mode == "fail":
            self.refused += 1
            session.send(pack(SUBMIT_SM | RESP, ESME_RSYSERR, seq, cstr("")))
            return True
        try:
            fields = parse_submit(body)
        except PduError:
            session.send(pack(GENERIC_NACK, ESME_RSYSERR, seq))
            return True
        message = Submitted(
            message_id=f"{next(self._ids):X}",
            system_id=session.system_id,
            source=fields["source"],
            destination=fields["destination"],
            data_coding=fields["data_coding"],
            esm_class=fields["esm_class"],
            registered_delivery=fields["registered_delivery"],
            short_message=fields["short_message"],
            at=datetime.now(UTC),
        )
        with self._lock:
            self.messages.append(message)
        if self.mode == "silent":
            return True
        if self.mode == "slow":
            time.sleep(self.delay_s)
        answer = pack(SUBMIT_SM | RESP, ESME_ROK, seq, cstr(message.message_id))
        session.send(answer)
        if self.mode == "twice":
            session.send(answer)
        if self.receipts and message.registered_delivery & 0x01:
            threading.Thread(target=self._receipt_later, args=(message.message_id,), daemon=True).start()
        return True

    def _receipt_later(self, message_id: str) -> None:
        time.sleep(0.05)
        with contextlib.suppress(KeyError, OSError):
            self.receipt(message_id)
