"""What the process tests check from outside, as an operator would: which processes a process started (through
/proc), whether they are still alive, whether anything still listens on a port, and what a process logged."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; ``started`` (clock ticks after boot) tells a reused pid apart."""

    pid: int
    ppid: int
    state: str = field(compare=False)  # a process is the same one while it runs, sleeps or stops
    started: int
    cmdline: tuple[str, ...]


def read_proc(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name in parentheses may hold spaces
    return Proc(
        pid, int(fields[1]), fields[0], int(fields[19]), tuple(a.decode() for a in raw.split(b"\0")[:-1])
    )


def all_processes() -> list[Proc]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            found.append(proc)
    return found


def descendants(pid: int) -> list[Proc]:
    """Every living process below ``pid`` (children, grandchildren, …)."""
    procs = all_processes()
    below: list[Proc] = []
    parents = {pid}
    while True:
        new = [p for p in procs if p.ppid in parents and p not in below and alive(p)]
        if not new:
            return below
        below.extend(new)
        parents = {p.pid for p in new}


def alive(proc: Proc) -> bool:
    """The same process (not a reused pid) still exists and is not a zombie waiting to be reaped."""
    now = read_proc(proc.pid)
    return now is not None and now.started == proc.started and now.state not in ("Z", "X")


def with_argument(text: str) -> list[Proc]:
    """Living processes with an argument that contains ``text`` (e.g. a recording folder)."""
    return [p for p in all_processes() if alive(p) and any(text in a for a in p.cmdline)]


def listening(port: int) -> bool:
    """Something listens on 127.0.0.1:port (a socket left in TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def wait_for(condition: Callable[[], object], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(0.1)


def gone(procs: Iterable[Proc]) -> bool:
    return not any(alive(p) for p in procs)


def log_events(path: Path) -> list[dict[str, object]]:
    """The JSON log lines a process wrote to ``path`` (other lines are skipped)."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def events_named(path: Path, name: str) -> list[dict[str, object]]:
    return [e for e in log_events(path) if e.get("event") == name]
