"""An exclusive lock on a folder that one process at a time may own (a recording folder, a device's data folder).

The lock is ``flock(LOCK_EX | LOCK_NB)`` on a file in the folder, which holds the owner's pid as text. The kernel
drops it when the owner exits, however it ends (SIGKILL and power loss included), so a stale lock file never
blocks a start. The descriptor is not inherited by child processes (Python opens files close-on-exec).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FolderLocked(Exception):
    """Another process owns the folder; ``holder`` is its pid (None if it had not written it yet)."""

    def __init__(self, directory: Path, owner: str, holder: int | None) -> None:
        who = f"{owner} pid {holder}" if holder is not None else f"another {owner} (pid not written yet)"
        super().__init__(f"{directory} is locked by {who}")
        self.directory = directory
        self.holder = holder


class FolderLock:
    def __init__(self, directory: Path, file_name: str, owner: str) -> None:
        self.directory = directory
        self.path = directory / file_name
        self.owner = owner  # what holds it, for the error message: "recorder", "patrol-edge run"
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise ``FolderLocked`` naming the pid that holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(self.directory, self.owner, self.holder()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def holder(self) -> int | None:
        """The pid written by the current (or last) owner."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def held_by_other(self) -> int | None:
        """Whether another process owns the lock now (without keeping it): its pid, 0 if unknown, else None."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self.holder() or 0
            return None
        finally:
            os.close(fd)  # drops the shared lock taken by the probe

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
