"""The parts the fines API and pages share inside one server process: the clock, the document signing key,
the contact registry and the look-up's rate limiter. Made once from the configuration and kept on the app
(``app.state.fines``); tests put their own (a fake clock) there before the first request. Also the SMS
gateway and sender settings the configuration chooses (``make_gateway``, ``notify_settings``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.fines.api_keys import RateLimiter
from server.fines.daily_run import FineWork
from server.fines.notifier import NotifySettings
from server.fines.sms_gateway import HttpGateway, LogGateway, SmsGateway
from server.keys import load_server_signer


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FinesRuntime:
    work: FineWork
    now: Callable[[], datetime] = _utc_now
    monotonic: Callable[[], float] = time.monotonic
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.monotonic)


def runtime_of(app: Any) -> FinesRuntime:
    """The app's fines runtime, made from its configuration on first use."""
    found = getattr(app.state, "fines", None)
    if isinstance(found, FinesRuntime):
        return found
    signer = load_server_signer(app.state.config.keys.signing_key_file)
    runtime = FinesRuntime(FineWork(signer))
    app.state.fines = runtime
    return runtime


def make_gateway(config: Any) -> SmsGateway:
    """The SMS gateway ``[fines.sms]`` chooses (``config`` is the whole ``ServerConfig``)."""
    sms = config.fines.sms
    if sms.gateway == "smpp":
        from server.fines.smpp_gateway import SmppGateway, SmppTarget

        return SmppGateway(
            SmppTarget.from_url(sms.smpp_url, sms.smpp_system_type), sms.source_addr, sms.timeout_s
        )
    if sms.gateway == "http":
        if not sms.http_url:
            raise ValueError("fines.sms.http_url: needed with gateway = 'http'")
        return HttpGateway(sms.http_url, sms.http_token, sms.http_idempotent, sms.timeout_s)
    return LogGateway(sms.log_file or config.data_dir / "sms.log")


def notify_settings(config: Any) -> NotifySettings:
    sms = config.fines.sms
    return NotifySettings(max_attempts=sms.max_attempts, retry_s=sms.retry_s, retry_max_s=sms.retry_max_s)
