"""Application scenarios of the simulated terminal (what it answers to Read Card and Authorisation) and its
profiles (which optional behaviours of real terminals it has)."""

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


class Profile(enum.StrEnum):
    """Behaviours that differ between real terminals, switched as a whole."""

    FULL = "full"  # Repeat Receipt (06 20) supported; an unanswered result is auto-reversed
    NO_REPEAT_RECEIPT = "no_repeat_receipt"  # answers 06 20 with 84 83 00 (function not supported)
    # keeps an approval the ECR never answered and sends it again, unsolicited, the next time the ECR speaks
    # (while the ECR waits for its next command's 80 00, also after a reconnect), as the independent terminal did
    STRAY_RESULTS = "stray_results"


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
    timezone: str = "Asia/Almaty"  # the terminal's clock (BMP 0C/0D) runs in local time
    repeat_receipt: bool = True
    stray_results: bool = False
    stray_hold_s: float = 120.0  # how long a kept result waits for the ECR before it is auto-reversed

    @property
    def profile(self) -> str:
        if self.stray_results:
            return Profile.STRAY_RESULTS.value
        return Profile.FULL.value if self.repeat_receipt else Profile.NO_REPEAT_RECEIPT.value

    def apply_profile(self, profile: Profile | str) -> None:
        chosen = Profile(profile)
        self.repeat_receipt = chosen is not Profile.NO_REPEAT_RECEIPT
        self.stray_results = chosen is Profile.STRAY_RESULTS
