"""How a patrolkit process stops: SIGTERM and SIGINT ask it to stop, and a child never outlives its parent.

- ``StopSignals`` turns the first SIGTERM or SIGINT into a stop request (an event, and optionally a
  ``StopRequested`` raised in the main thread until ``hold()``); the process then stops its children and logs
  that it stopped. Later signals are logged and ignored, so a second Ctrl-C cannot cut the stopping short and
  leave children behind.
- ``serve_until_stopped`` runs an HTTP server (uvicorn's ``Server``) on a thread while the main thread keeps the
  signals: uvicorn's own handlers would re-raise SIGTERM after its shutdown and end the process before it stopped
  anything else.
- ``child_env`` marks a child's environment with this process's pid; the child calls ``end_with_parent`` first
  thing, which asks the kernel (``prctl(PR_SET_PDEATHSIG)``) to send it SIGTERM, or a signal of its own, when
  that parent dies, even by SIGKILL. The kernel sends it when the *thread* that started the child ends, so start
  children from a thread that lives as long as they should.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Protocol

from core.structured_log import log_event

PARENT_PID_ENV = "PATROLKIT_PARENT_PID"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class StopRequested(BaseException):
    """Raised in the main thread by the first stop signal (with ``raise_in_main``); like KeyboardInterrupt, it is
    not an ``Exception``, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """The handler does no buffered I/O (a ``print`` or a log line in a handler can break the same call
    interrupted in the main thread): callers log ``signal_name`` once they have stopped. ``say`` must be safe in
    a handler too (``os.write``); the demo uses it to answer a person at the terminal."""

    def __init__(self, raise_in_main: bool = False, say: Callable[[str], None] | None = None) -> None:
        self._raise = raise_in_main
        self._say = say
        self.requested = threading.Event()
        self.signum: int | None = None

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def install(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def hold(self) -> None:
        """From now on a signal only sets ``requested``: the process is stopping its children."""
        self._raise = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set():
            if self._say is not None:
                self._say(f"{name}: already stopping, waiting for every process to end")
            return
        self.signum = signum
        self.requested.set()
        if self._say is not None:
            self._say(f"{name}: stopping")
        if self._raise:
            self._raise = False
            raise StopRequested(signum)


class HttpServer(Protocol):
    """What ``serve_until_stopped`` needs of ``uvicorn.Server``."""

    should_exit: bool

    def run(self) -> None: ...


def serve_until_stopped(server: HttpServer, stop: StopSignals, poll_seconds: float = 0.2) -> bool:
    """Serve on a thread until ``stop`` is requested; True if it served until then, False if it ended by itself
    (a port in use, a crash): the caller then stops the rest and exits non-zero."""
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    while thread.is_alive() and not stop.requested.wait(poll_seconds):
        pass
    served = stop.requested.is_set()
    server.should_exit = True
    thread.join()
    return served


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a child that must end when this process dies."""
    return {**(os.environ if env is None else env), PARENT_PID_ENV: str(os.getpid())}


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def end_with_parent(log: logging.Logger, sig: int = signal.SIGTERM) -> int | None:
    """If a patrolkit parent started this process (``child_env``), have the kernel send it ``sig`` when that
    parent dies; returns the parent's pid. The mark is removed, so this process's own children are not bound to
    it. Install the handler for ``sig`` first.

    The kernel sends ``sig`` each time the parent *thread* that started this process ends. A parent killed with
    SIGKILL ends thread by thread: the first signal can come while ``getppid()`` still names the parent (a sibling
    thread of the dying parent has adopted this process). A child that must tell its parent's death apart from a
    plain stop request gives it a signal of its own (not SIGTERM) and reads that signal, not ``getppid()``.

    A parent that died before the request took effect is seen at once, and this process exits."""
    value = os.environ.pop(PARENT_PID_ENV, None)
    if not value or not value.isdigit():
        return None
    parent = int(value)
    if not set_parent_death_signal(sig):
        log_event(log, "process.parent_death_signal_unavailable", platform=sys.platform)
        return parent
    if os.getppid() != parent:
        log_event(log, "process.parent_gone", parent=parent)
        raise SystemExit(1)
    return parent
