"""Application scenarios of the simulated terminal: what it answers to Read Card and Authorisation."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Scenario(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"  # 04 0F 27 <rc> then 06 1E <rc>
    DECLINED_NO_STATUS = "declined_no_status"  # 06 1E <rc> alone
    NO_CARD = "no_card"  # 06 1E 6C after the Read Card timeout
    UNREADABLE = "unreadable"  # 06 1E 64
    EXPIRED = "expired"  # 06 1E 78
    WRONG_PIN_THEN_RIGHT = "wrong_pin_then_right"
    PIN_TRIES_EXCEEDED = "pin_tries_exceeded"
    WRONG_CURRENCY = "wrong_currency"  # 6F
    BUSY = "busy"  # status 9C, commands answered 84 9C 00
    LONG_HOST_WAIT = "long_host_wait"  # 04 FF 04 every 30 s for longer than T4
    SILENT = "silent"  # goes quiet beyond T4 after 80 00
    ABORT_REFUSED = "abort_refused"  # 06 B0 during 06 01 answered 84 83 00; payment goes on


@dataclass
class TerminalSettings:
    """Everything about the simulated terminal that a test or the demo may change at run time."""

    scenario: Scenario = Scenario.APPROVED
    card: str = "visa_named"
    auto_present: bool = True  # present ``card`` at once on Read Card; else wait for the control interface
    auto_pin: bool = True  # enter the right PIN at once; else wait for the control interface
    terminal_id: str = "52500038"
    currencies: set[int] = field(default_factory=lambda: {398, 978, 981})
    decline_code: int = 0x05  # host result code (opaque, §11 ambiguity)
    pin_fail_code: int = 0x37
    host_wait_s: float = 240.0
    status_every_s: float = 30.0
    reply_timeout_s: float = 5.0  # wait for the ECR's answer to a 04 0F before auto-reversal
    sw_version: str = "SIM-1.0"
