"""ZVT messages in both directions: ECR commands (Registration, Status Enquiry, Read Card, Authorisation,
Abort, Reversal, Repeat Receipt, End-of-Day ...) and terminal messages (80 00/84 xx, 04 FF, 04 0F, 06 0F, 06 1E).

Each ECR command names its APDU and how its flow ends (``Flow``), so the session can run any of them.
Terminal messages are parsed from the BMP table; Completion is parsed according to the command it answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from hardware.zvt.apdu import Apdu
from hardware.zvt.bmp import (
    BmpSet,
    FieldList,
    amount_bcd,
    bcd_decode,
    bcd_encode,
    currency_bcd,
    decode_bmps,
    encode_bmps,
    password_bcd,
    read_var_length,
    tlv_value,
    var_length,
)
from hardware.zvt.errors import ApduError
from hardware.zvt.tlv import Tlv, encode_tlv

KZT_NUMERIC = 398
DEFAULT_CONFIG = (
    0x3E  # ECR prints payment + admin receipts, wants 04 FF, controls payment + admin (zvt.md §9)
)
PAY_TYPE_USE_READ_CARD = 0x42  # 0100 xxxx "PT decides" + xxxx xx1x "use the card data of the last Read Card"
CARD_TYPE_CHIP_MAG = 0x50
TAG_CARD_HASH = 0x1F14
TAG_REQUEST_CARD_HASH = 0x1F15


class Flow(enum.Enum):
    """Where a command's exchange ends."""

    ACK_ONLY = "ack_only"  # 80 00 00 and done (Abort, Log-Off)
    STATUS_INFO = "status_info"  # ends with the terminal's 04 0F (Read Card: no Completion)
    COMPLETION = "completion"  # ends with 06 0F (or 06 1E)


class Result(enum.Enum):
    """What a command's 04 0F is, which decides who may answer it ``80 00 00`` (zvt.md §12)."""

    NONE = "none"  # the command has no 04 0F: one arriving during it is stray
    CARD_DATA = "card_data"  # Read Card: card data, nothing is booked; the session acknowledges it
    TRANSACTION = "transaction"  # a transaction result: only a handler that saved it may acknowledge it


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    apdu: Apdu
    flow: Flow = Flow.COMPLETION
    result: Result = Result.NONE

    def encode(self) -> bytes:
        return self.apdu.encode()


def _tlv_bmp(tlv: tuple[Tlv, ...] | None) -> bytes:
    return encode_bmps([(0x06, tlv)]) if tlv else b""


def registration(
    password: str = "000000",
    config: int = DEFAULT_CONFIG,
    currency: int | None = KZT_NUMERIC,
    service_byte: int | None = None,
    tlv: tuple[Tlv, ...] | None = None,
) -> Command:
    """06 00 Registration: ``<pw> <config> [<CC> [03 <service>] [06 TLV]]``."""
    data = password_bcd(password) + bytes((config,))
    if currency is not None:
        data += currency_bcd(currency)
        if service_byte is not None:
            data += bytes((0x03, service_byte))
        data += _tlv_bmp(tlv)
    return Command("registration", Apdu(0x06, 0x00, data))


def status_enquiry(password: str | None = "000000", service_byte: int | None = None) -> Command:
    """05 01 Status Enquiry; answered by a Completion carrying the terminal status."""
    data = b""
    if password is not None:
        data = password_bcd(password)
        if service_byte is not None:
            data += bytes((0x03, service_byte))
    return Command("status_enquiry", Apdu(0x05, 0x01, data))


def read_card(
    timeout_s: int = 60, card_type: int | None = CARD_TYPE_CHIP_MAG, card_hash: bool = True
) -> Command:
    """06 C0 Read Card; with ``card_hash`` TLV 1F15 asks for the 1F14 card identification hash."""
    if not 0 <= timeout_s <= 255:
        raise ApduError(f"Read Card timeout must be 0..255 s, got {timeout_s}")
    data = bytes((timeout_s,))
    if card_type is not None:
        data += bytes((0x19, card_type))
    if card_hash:
        data += _tlv_bmp((Tlv(TAG_REQUEST_CARD_HASH, b"\x80"),))
    return Command("read_card", Apdu(0x06, 0xC0, data), Flow.STATUS_INFO, Result.CARD_DATA)


def authorisation(
    amount_minor: int,
    currency: int = KZT_NUMERIC,
    pay_type: int | None = PAY_TYPE_USE_READ_CARD,
    card_hash: bool = False,
) -> Command:
    """06 01 Authorisation of ``amount_minor`` in ``currency``; pay type 42 = use the card of the last Read Card."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ApduError(
            f"authorisation amount must be a positive number of minor units, got {amount_minor!r}"
        )
    fl = FieldList().add("amount", amount_minor).add("currency", currency).add("pay_type", pay_type)
    if card_hash:
        fl.add("tlv", (Tlv(TAG_REQUEST_CARD_HASH, b"\x80"),))
    amount_bcd(amount_minor)  # validates the range
    return Command("authorisation", Apdu(0x06, 0x01, fl.encode()), result=Result.TRANSACTION)


def reversal(receipt_no: int, password: str = "000000") -> Command:
    """06 30 Reversal of the payment with ``receipt_no`` (BMP 87)."""
    return Command(
        "reversal",
        Apdu(0x06, 0x30, password_bcd(password) + encode_bmps([(0x87, receipt_no)])),
        result=Result.TRANSACTION,
    )


def abort() -> Command:
    """06 B0 Abort: ends a Read Card or releases a retained card; not guaranteed during 06 01."""
    return Command("abort", Apdu(0x06, 0xB0), Flow.ACK_ONLY)


def end_of_day(password: str = "000000") -> Command:
    """06 50 End-of-Day: the terminal closes its batch; its 04 0F carries the totals (``EndOfDayTotals``)."""
    return Command("end_of_day", Apdu(0x06, 0x50, password_bcd(password)), result=Result.TRANSACTION)


def repeat_receipt(password: str = "000000") -> Command:
    """06 20 Repeat Receipt: the terminal re-sends the 04 0F of its last transaction (resync after a lost result)."""
    return Command("repeat_receipt", Apdu(0x06, 0x20, password_bcd(password)), result=Result.TRANSACTION)


def log_off() -> Command:
    return Command("log_off", Apdu(0x06, 0x02), Flow.ACK_ONLY)


def initialisation(password: str = "000000") -> Command:
    return Command("initialisation", Apdu(0x06, 0x93, password_bcd(password)))


def diagnosis() -> Command:
    return Command("diagnosis", Apdu(0x06, 0x70))


def reset_terminal() -> Command:
    return Command("reset_terminal", Apdu(0x06, 0x18))


# ---------------------------------------------------------------- terminal → ECR
ACK_APDU = bytes.fromhex("800000")
RESEND_LATER_APDU = bytes.fromhex("849C00")


def negative_apdu(code: int) -> bytes:
    return bytes((0x84, code, 0x00))


def reverse_request_apdu(code: int = 0x66) -> bytes:
    """ECR answer ``84 yy 00`` (yy != 00) to a 04 0F: do not book, the terminal must reverse (zvt.md §10)."""
    if code == 0:
        raise ApduError("84 00 is a positive answer; a reversal request needs a non-zero code")
    return negative_apdu(code)


@dataclass(frozen=True, slots=True)
class CommandAck:
    """Reply to a command: ``80 00`` or ``84 00`` positive, ``84 xx`` negative with result code xx."""

    positive: bool
    code: int
    data: bytes = b""


def parse_command_ack(apdu: Apdu) -> CommandAck | None:
    if apdu.cls == 0x80 and apdu.instr == 0x00:
        return CommandAck(True, 0, apdu.data)
    if apdu.cls == 0x84:
        return CommandAck(apdu.instr == 0x00, apdu.instr, apdu.data)
    return None


@dataclass(frozen=True, slots=True)
class IntermediateStatus:
    """04 FF: what the terminal shows (insert card, PIN, waiting for host ...); may set a new T4 in minutes."""

    code: int
    timeout_minutes: int | None = None
    tlv: tuple[Tlv, ...] = ()


INTERMEDIATE_TEXT: dict[int, str] = {
    0x00: "waiting for amount confirmation",
    0x01: "please watch PIN pad",
    0x02: "please watch PIN pad",
    0x04: "waiting for host",
    0x05: "auto-reversal",
    0x0A: "insert card",
    0x0B: "remove card",
    0x0C: "card not readable",
    0x0E: "please wait",
    0x15: "incorrect PIN",
    0x17: "please wait",
    0x18: "PIN try limit exceeded",
    0x1D: "declined",
    0x68: "card insertion detected",
}


def intermediate_text(code: int) -> str:
    return INTERMEDIATE_TEXT.get(code, f"status 0x{code:02X}")


def parse_intermediate(apdu: Apdu) -> IntermediateStatus:
    if not apdu.data:
        raise ApduError("04 FF without a status byte")
    timeout = None
    rest = apdu.data[1:]
    tlv: tuple[Tlv, ...] = ()
    if rest and rest[0] != 0x06:
        timeout = int(bcd_decode(rest[:1]))
        rest = rest[1:]
    if rest:
        tlv = decode_bmps(rest).get("tlv", ()) or ()
    return IntermediateStatus(apdu.data[0], timeout, tlv)


def intermediate_apdu(code: int, timeout_minutes: int | None = None) -> bytes:
    data = bytes((code,))
    if timeout_minutes is not None:
        data += bytes.fromhex(f"{timeout_minutes:02d}")
    return Apdu(0x04, 0xFF, data).encode()


@dataclass(frozen=True, slots=True)
class StatusInformation:
    """04 0F: the result of a Read Card or a payment; BMP order is not relied on."""

    raw: bytes
    fields: BmpSet

    def _get(self, name: str) -> Any:
        return self.fields.get(name)

    @property
    def result_code(self) -> int:
        rc = self._get("result_code")
        return 0 if rc is None else int(rc)

    @property
    def approved(self) -> bool:
        return self.result_code == 0

    @property
    def amount_minor(self) -> int | None:
        return self._get("amount")

    @property
    def currency(self) -> int | None:
        return self._get("currency")

    @property
    def trace(self) -> int | None:
        return self._get("trace")

    @property
    def original_trace(self) -> int | None:
        return self._get("original_trace")

    @property
    def receipt_no(self) -> int | None:
        return self._get("receipt_no")

    @property
    def turnover_no(self) -> int | None:
        return self._get("turnover_no")

    @property
    def terminal_id(self) -> str | None:
        return self._get("terminal_id")

    @property
    def pan(self) -> str | None:
        return self._get("pan")

    @property
    def card_type(self) -> int | None:
        return self._get("card_type")

    @property
    def card_name(self) -> str | None:
        return self._get("card_name")

    @property
    def expiry(self) -> str | None:
        return self._get("expiry")

    @property
    def date(self) -> str | None:
        return self._get("date")

    @property
    def time(self) -> str | None:
        return self._get("time")

    @property
    def auth_code(self) -> str | None:
        """Approval code: BMP 3B (authorisation attribute, 8 bytes), printable ASCII with padding stripped."""
        value = self._get("aid")
        if not value:
            return None
        text = bytes(value).rstrip(b"\x00 ").decode("ascii", "replace")
        return text or None

    @property
    def track1(self) -> str | None:
        return self._get("track1")

    @property
    def card_hash(self) -> bytes | None:
        return tlv_value(self._get("tlv"), TAG_CARD_HASH)

    @property
    def holder_name(self) -> str | None:
        """Cardholder name from track 1 (``%B PAN ^ SURNAME/GIVEN ^ ...`` without sentinels), if the PT gave one."""
        t1 = self.track1
        if t1:
            parts = t1.split("^")
            if len(parts) >= 3:
                name = parts[1].strip()
                return name or None
        return None

    @property
    def is_transaction_result(self) -> bool:
        """It reports a booking (amount, trace, receipt or original trace), not card data of a Read Card."""
        return any(
            self._get(name) is not None for name in ("amount", "trace", "receipt_no", "original_trace")
        )


def parse_status_information(apdu: Apdu) -> StatusInformation:
    return StatusInformation(apdu.encode(), decode_bmps(apdu.data))


# BMP 60 "individual totals" of an End-of-Day 04 0F (P015 §2.16.4): receipt-no start and end (2 BCD each),
# then count (1 binary byte) and turnover (6 BCD) for each card group in this order.
TOTALS_GROUPS = ("girocard", "jcb", "eurocard", "amex", "visa", "diners", "others")
_GROUP_SIZE = 7


@dataclass(frozen=True, slots=True)
class GroupTotal:
    group: str
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class EndOfDayTotals:
    """What an End-of-Day 04 0F says about the batch it closed: total, receipt range, per-group counts."""

    total_minor: int
    receipt_from: int | None
    receipt_to: int | None
    groups: tuple[GroupTotal, ...]
    trace: int | None
    date: str | None
    time: str | None

    @property
    def count(self) -> int | None:
        """Transactions in the batch (None when the terminal sent no BMP 60)."""
        return sum(g.count for g in self.groups) if self.groups else None


def individual_totals(receipt_from: int, receipt_to: int, groups: dict[str, tuple[int, int]]) -> bytes:
    """BMP 60 content: receipt range then (count, amount) of every group in ``TOTALS_GROUPS`` order."""
    out = bcd_encode_int(receipt_from, 2) + bcd_encode_int(receipt_to, 2)
    for name in TOTALS_GROUPS:
        count, amount = groups.get(name, (0, 0))
        if not 0 <= count <= 0xFF:
            raise ApduError(f"individual totals: count {count} of {name} does not fit one byte")
        out += bytes((count,)) + amount_bcd(amount)
    return out


def bcd_encode_int(value: int, nbytes: int) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApduError(f"BCD needs a non-negative int, got {value!r}")
    return bcd_encode(str(value), nbytes)


def parse_end_of_day(info: StatusInformation) -> EndOfDayTotals:
    """The totals of an End-of-Day 04 0F; a malformed BMP 60 raises ``ApduError`` naming what is wrong."""
    raw = info.fields.get("individual_totals")
    receipt_from = receipt_to = None
    groups: list[GroupTotal] = []
    if raw is not None:
        need = 4 + _GROUP_SIZE * len(TOTALS_GROUPS)
        if len(raw) < need:
            raise ApduError(f"BMP 60 (individual totals) has {len(raw)} bytes, needs {need}")
        receipt_from = int(bcd_decode(raw[0:2]))
        receipt_to = int(bcd_decode(raw[2:4]))
        for n, name in enumerate(TOTALS_GROUPS):
            at = 4 + n * _GROUP_SIZE
            groups.append(GroupTotal(name, raw[at], int(bcd_decode(raw[at + 1 : at + _GROUP_SIZE]))))
    return EndOfDayTotals(
        total_minor=info.amount_minor or 0,
        receipt_from=receipt_from,
        receipt_to=receipt_to,
        groups=tuple(groups),
        trace=info.trace,
        date=info.date,
        time=info.time,
    )


@dataclass(frozen=True, slots=True)
class Completion:
    """06 0F; after 05 01 it carries the software version and terminal status, else BMPs."""

    fields: BmpSet = field(default_factory=BmpSet)
    sw_version: str | None = None
    terminal_status: int | None = None

    @property
    def result_code(self) -> int:
        rc = self.fields.get("result_code")
        return 0 if rc is None else int(rc)


def parse_completion(apdu: Apdu, answers: Command | None) -> Completion:
    """Parse a Completion in the context of the command it answers (the 'cursed' completion of ecrterm)."""
    data = apdu.data
    if answers is not None and answers.apdu.command == (0x05, 0x01):
        i = 0
        sw = None
        if data and data[0] >> 4 == 0xF:
            n, i = read_var_length(data, 0, 3, "Completion software version")
            if i + n > len(data):
                raise ApduError("Completion software version truncated")
            sw = data[i : i + n].decode("cp437")
            i += n
        status = None
        if i < len(data):
            status = data[i]
            i += 1
        return Completion(decode_bmps(data[i:]), sw, status)
    return Completion(decode_bmps(data))


@dataclass(frozen=True, slots=True)
class AbortNotice:
    """06 1E: the command ended without success; ``result_code`` says why (6C timeout/abort key, 6F currency...)."""

    result_code: int
    currency: int | None = None
    tlv: tuple[Tlv, ...] = ()


def parse_abort_notice(apdu: Apdu) -> AbortNotice:
    data = apdu.data
    if not data:
        return AbortNotice(0xFF)
    rc = data[0]
    rest = data[1:]
    cc = None
    if rc == 0x6F and len(rest) >= 2 and rest[0] != 0x06:
        cc = int(bcd_decode(rest[:2]))
        rest = rest[2:]
    tlv: tuple[Tlv, ...] = ()
    if rest:
        tlv = decode_bmps(rest).get("tlv", ()) or ()
    return AbortNotice(rc, cc, tlv)


def abort_notice_apdu(code: int, currency: int | None = None) -> bytes:
    data = bytes((code,))
    if currency is not None:
        data += currency_bcd(currency)
    return Apdu(0x06, 0x1E, data).encode()


def completion_apdu(fields: list[tuple[int, Any]] | None = None) -> bytes:
    return Apdu(0x06, 0x0F, encode_bmps(fields or [])).encode()


def status_completion_apdu(sw_version: str | None, terminal_status: int, tlv: tuple[Tlv, ...] = ()) -> bytes:
    data = b""
    if sw_version is not None:
        raw = sw_version.encode("cp437")
        data += var_length(len(raw), 3) + raw
    data += bytes((terminal_status,))
    if tlv:
        data += encode_bmps([(0x06, tlv)])
    return Apdu(0x06, 0x0F, data).encode()


def status_information_apdu(fields: list[tuple[int, Any]]) -> bytes:
    return Apdu(0x04, 0x0F, encode_bmps(fields)).encode()


__all__ = [
    "ACK_APDU",
    "AbortNotice",
    "Command",
    "CommandAck",
    "Completion",
    "Flow",
    "IntermediateStatus",
    "StatusInformation",
    "encode_tlv",
]
