"""One network thread for the paho clients of many simulated devices in one process.

On a device, paho runs its own network thread (``loop_start``). A simulator process holding a hundred devices
would run a hundred of them: each wakes for every packet its device sends or receives, and together they take
the cores and the GIL from the devices' logic and from the server they share the machine with. Here one
thread per process does what those threads do, through paho's external-loop API (``loop_read``,
``loop_write``, ``loop_misc``) and one ``selectors`` poll (epoll: no descriptor limit):

- it reads whatever a broker sends, and writes what the senders publish (a publish only queues its packet and
  asks for a write, so every socket is written from this thread alone);
- it sends keepalives;
- after a lost link it reconnects as ``loop_forever`` does: first after the sender's own jittered delay
  (``SyncSender.next_reconnect_delay``), then doubling up to the sender's ``reconnect_max_s`` while the
  broker refuses. paho's connect blocks, so the connects themselves run on a few connector threads: a SYN
  that a broker's full accept queue drops is sent again only after a second, and that second must not hold
  up every other device of the process.

The senders and their logic are unchanged; only who moves their bytes differs.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
MISC_EVERY_S = 1.0  # keepalive checks, as paho's own loop makes them
CONNECTORS = 8  # threads making TCP connects at once (paho's connect blocks)
WRITE_SCAN_S = 0.02  # every client is looked at for queued packets at least this often


class NetClient(Protocol):
    """What the loop needs of a sender: its paho client, and its reconnect delays."""

    @property
    def client(self) -> mqtt.Client: ...

    @property
    def reconnect_min_s(self) -> float: ...

    @property
    def reconnect_max_s(self) -> float: ...


@dataclass(order=True)
class _Due:
    """A connect to make at ``at``: after a wait of ``backoff`` seconds since a loss or a refusal (0: the first
    connect), which the next refusal doubles."""

    at: float
    n: int
    peer: NetClient = field(compare=False)
    backoff: float = field(compare=False)


class NetLoop:
    """Drives the paho clients handed to ``add``; ``start`` then ``stop``."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._peers: list[NetClient] = []
        self._want: dict[int, NetClient] = {}  # id -> a peer that queued a packet since the loop last wrote
        self._dues: list[_Due] = []  # reconnects, soonest first
        self._n = 0
        self._lock = threading.Lock()  # guards ``_dues`` (the senders' callbacks schedule from other threads)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._closing = False  # the senders are disconnecting: no more reconnects
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-net", daemon=True)
        self._connecting: set[int] = set()  # ids of the peers a connector thread is connecting now
        self._connectors = ThreadPoolExecutor(CONNECTORS, thread_name_prefix="fleet-net-connect")
        self.failed_attempts = 0

    def add(self, peer: NetClient, host: str, port: int, keepalive: int = 30, after_s: float = 0.0) -> None:
        """Take over ``peer``'s client: it connects ``after_s`` after this call (once the loop runs)."""
        client = peer.client
        opened = client.on_socket_open
        closed = client.on_socket_close

        def on_open(c: mqtt.Client, ud: Any, sock: Any) -> None:
            if opened is not None:
                opened(c, ud, sock)
            self._sel.register(sock, selectors.EVENT_READ, peer)

        def on_close(c: mqtt.Client, ud: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            if closed is not None:
                closed(c, ud, sock)

        client.on_socket_open = on_open
        client.on_socket_close = on_close
        client.on_socket_register_write = lambda _c, _ud, _s: self._wants_write(peer)
        client.connect_async(host, port, keepalive=keepalive)
        self._peers.append(peer)
        self._schedule(peer, after_s, backoff=0.0)  # a start offset, not a wait after a refusal

    def reconnect_later(self, peer: NetClient, delay_s: float) -> None:
        """Connect ``peer`` again after ``delay_s`` (a sender's jittered delay after a loss)."""
        self._schedule(peer, delay_s, backoff=delay_s)

    def _schedule(self, peer: NetClient, wait_s: float, backoff: float) -> None:
        if self._closing:
            return
        with self._lock:
            self._n += 1
            heapq.heappush(self._dues, _Due(time.monotonic() + wait_s, self._n, peer, backoff))
        self.wake()

    def _wants_write(self, peer: NetClient) -> None:
        self._want[id(peer)] = peer
        self.wake()

    def wake(self) -> None:
        """Make the loop look again now (a packet was queued, a reconnect scheduled)."""
        if not self._woken:
            self._woken = True
            with contextlib.suppress(BlockingIOError):
                self._wake_w.send(b"\0")

    def start(self) -> None:
        self._thread.start()

    def closing(self) -> None:
        """The senders are about to disconnect: a link lost from now on is not reconnected."""
        self._closing = True

    def stop(self) -> None:
        """Write what is queued (the senders' DISCONNECTs), then stop and close every socket."""
        self._closing = True
        self._stop.set()
        self.wake()
        self._thread.join(10)
        self._connectors.shutdown(wait=True, cancel_futures=True)
        for peer in self._peers:
            sock = peer.client.socket()
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
                sock.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        last_misc = last_scan = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            timeout = WRITE_SCAN_S
            with self._lock:
                if self._dues:
                    timeout = max(0.0, min(timeout, self._dues[0].at - time.monotonic()))
            for key, _mask in self._sel.select(timeout):
                if key.data is None:
                    self._drain_wake()
                else:
                    self._step(key.data.client.loop_read)
            now = time.monotonic()
            scan = stopping or now - last_scan >= WRITE_SCAN_S  # a wake-up missed in a race is caught here
            if scan:
                last_scan = now
            self._write(self._peers if scan else self._take_wanted())
            if stopping:
                return
            self._connect_due()
            if now - last_misc >= MISC_EVERY_S:
                last_misc = now
                for peer in self._peers:
                    self._step(peer.client.loop_misc)

    def _drain_wake(self) -> None:
        """Empty the wake socket, then let the next ``wake`` send again: what a wake skipped until then asked
        for is already in ``_want`` or ``_dues``, and this turn of the loop takes it."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        self._woken = False

    def _take_wanted(self) -> list[NetClient]:
        want, self._want = self._want, {}
        return list(want.values())

    def _write(self, peers: list[NetClient]) -> None:
        for peer in peers:
            client = peer.client
            if client.want_write() and client.socket() is not None:
                self._step(client.loop_write)
                if client.want_write():  # the socket's buffer is full: again on the next turn
                    self._want[id(peer)] = peer

    def _step(self, call: Callable[[], object]) -> None:
        """One paho call for a peer; a failure (a bug in a callback) is logged and the loop goes on."""
        try:
            call()
        except Exception:
            log.exception("fleet_net.client_failed")

    def _connect_due(self) -> None:
        """Hand each peer whose reconnect is due to a connector thread (one at a time per peer)."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._dues or self._dues[0].at > now:
                    return
                due = heapq.heappop(self._dues)
                peer = due.peer
                if id(peer) in self._connecting or peer.client.socket() is not None:
                    continue  # already connecting or connected (a stale entry)
                self._connecting.add(id(peer))
            self._connectors.submit(self._connect, peer, due.backoff)

    def _connect(self, peer: NetClient, backoff: float) -> None:
        """paho's blocking connect, on a connector thread: a connect that waits (a SYN the broker's full
        accept queue dropped is sent again only after a second) holds up no other device's. ``backoff``: the
        wait before this attempt."""
        refused = False
        try:
            peer.client.reconnect()
        except Exception as exc:  # refused, unreachable, or a bug in a callback: tried again later
            refused = True
            if not isinstance(exc, OSError):
                log.exception("fleet_net.connect_failed")
        with self._lock:
            self._connecting.discard(id(peer))  # before the retry is due: the loop would drop it as stale
            self.failed_attempts += refused
        if refused:
            # as paho's ``loop_forever``: the first wait after a refused first connect is the minimum, and each
            # refused attempt doubles the wait
            delay = min(backoff * 2 if backoff > 0 else peer.reconnect_min_s, peer.reconnect_max_s)
            self.reconnect_later(peer, delay)
        self.wake()
