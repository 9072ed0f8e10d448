"""The parts the fines API and pages share inside one server process: the clock, the document signing key,
the contact registry and the look-up's rate limiter. Made once from the configuration and kept on the app
(``app.state.fines``); tests put their own (a fake clock) there before the first request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.fines.api_keys import RateLimiter
from server.fines.daily_run import FineWork
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
