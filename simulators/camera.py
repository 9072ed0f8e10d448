"""Synthetic camera: a deterministic moving scene with a machine-readable frame counter, served as a live stream.

``SyntheticScene.frame(n)`` draws frame ``n`` (moving gradient, a box on a circle, the counter as text and
as a strip of 24 black/white blocks along the top edge that survives H.264). ``read_counter`` reads the
strip back from a decoded frame, so tests know exactly which frames a recording holds.
``SyntheticCameraServer`` streams the scene in real time as YUV4MPEG2 over TCP, the raw format that
OpenCV (FFmpeg) opens with ``tcp://host:port``; like a real camera it keeps running while nobody reads and
skips frames a slow reader missed.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

COUNTER_BITS = 24


@dataclass(frozen=True)
class _Strip:
    block_w: int
    block_h: int


def _strip(width: int, height: int) -> _Strip:
    return _Strip(block_w=max(4, width // (COUNTER_BITS + 8)), block_h=max(8, height // 24))


class SyntheticScene:
    def __init__(self, width: int = 1280, height: int = 720) -> None:
        if width % 2 or height % 2 or width < 64 or height < 48:
            raise ValueError(f"synthetic scene size {width}x{height} must be even and at least 64x48")
        self.width = width
        self.height = height
        xs = np.linspace(0, 255, width, dtype=np.float32)
        ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        base = np.empty((height, width, 3), np.uint8)
        base[..., 0] = (xs[None, :] * 0.6 + ys * 0.2).astype(np.uint8)
        base[..., 1] = (ys * 0.7 + 40).clip(0, 255).astype(np.uint8)
        base[..., 2] = (255 - xs[None, :] * 0.5).astype(np.uint8)
        self._base = base
        self._strip = _strip(width, height)

    def frame(self, n: int) -> NDArray[np.uint8]:
        img = np.roll(self._base, (n * 4) % self.width, axis=1)
        radius = min(self.width, self.height) // 4
        cx = int(self.width / 2 + radius * np.cos(n / 15))
        cy = int(self.height / 2 + radius * np.sin(n / 15))
        side = max(8, self.height // 10)
        cv2.rectangle(img, (cx - side, cy - side), (cx + side, cy + side), (255, 255, 255), -1)
        scale = self.height / 480
        cv2.putText(
            img,
            f"frame {n}",
            (self.width // 20, self.height // 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, int(2 * scale)),
        )
        s = self._strip
        img[: s.block_h, : s.block_w * COUNTER_BITS] = 0
        for bit in range(COUNTER_BITS):
            if (n >> bit) & 1:
                img[: s.block_h, bit * s.block_w : (bit + 1) * s.block_w] = 255
        return img


def read_counter(frame: np.ndarray) -> int:
    """The frame number drawn by ``SyntheticScene`` into a (decoded, possibly compressed) BGR frame."""
    s = _strip(frame.shape[1], frame.shape[0])
    value = 0
    for bit in range(COUNTER_BITS):
        block = frame[
            s.block_h // 4 : s.block_h * 3 // 4,
            bit * s.block_w + s.block_w // 4 : (bit + 1) * s.block_w - s.block_w // 4,
        ]
        if float(block.mean()) > 127:
            value |= 1 << bit
    return value


def y4m_header(width: int, height: int, fps: int) -> bytes:
    return f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii")


class SyntheticCameraServer:
    """Streams ``SyntheticScene`` as YUV4MPEG2 over TCP at ``fps`` frames per second of wall time."""

    def __init__(
        self, width: int = 1280, height: int = 720, fps: int = 30, host: str = "127.0.0.1", port: int = 0
    ):
        self.scene = SyntheticScene(width, height)
        self.fps = fps
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cache: tuple[int, bytes] = (-1, b"")
        self.frames_sent = 0
        self.frames_skipped = 0
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def current_frame(self) -> int:
        """Number of the frame the camera is showing now."""
        return int((time.monotonic() - self._t0) * self.fps)

    def start(self) -> SyntheticCameraServer:
        thread = threading.Thread(target=self._accept_loop, name="synthetic-camera", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _payload(self, n: int) -> bytes:
        with self._lock:
            if self._cache[0] == n:
                return self._cache[1]
        yuv = cv2.cvtColor(self.scene.frame(n), cv2.COLOR_BGR2YUV_I420)
        data = b"FRAME\n" + yuv.tobytes()
        with self._lock:
            self._cache = (n, data)
        return data

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.sendall(y4m_header(self.scene.width, self.scene.height, self.fps))
            n = self.current_frame()
            while not self._stop.is_set():
                due = self._t0 + n / self.fps
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now_n = self.current_frame()
                if now_n > n + 1:
                    with self._lock:
                        self.frames_skipped += now_n - n - 1
                    n = now_n
                conn.sendall(self._payload(n))
                with self._lock:
                    self.frames_sent += 1
                n += 1
        except OSError:
            pass
        finally:
            conn.close()
