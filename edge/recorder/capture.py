"""Capture thread: reads the camera on its own thread into a bounded queue, so the camera is never kept waiting
by the encoder (a segment opening, a slow fsync).

A live source (a real camera) keeps running while nobody reads, so when the queue is full the newest frame is
dropped and counted (``dropped``): the loss is visible instead of hidden in the camera driver. A non-live
source (a file, a test stand-in) makes the thread wait instead. Camera errors travel through the queue in
order with the frames, and the camera is opened again after ``retry_seconds``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hardware.camera import CameraError, CaptureFormat, Frame, FrameSource

CameraFactory = Callable[[str, CaptureFormat], FrameSource]


@dataclass(frozen=True)
class CameraFailed:
    detail: str


class CaptureEnded:
    """Put last in the queue: the capture thread has stopped."""


Item = Frame | CameraFailed | CaptureEnded


class CaptureThread:
    def __init__(
        self,
        factory: CameraFactory,
        source: str,
        fmt: CaptureFormat,
        stop: threading.Event,
        queue_frames: int = 30,
        retry_seconds: float = 1.0,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.factory = factory
        self.source = source
        self.format = fmt
        self.stop = stop
        self.shutdown = shutdown or stop  # the system's stop: no frame is read once it is set
        self.retry_seconds = retry_seconds
        self.items: queue.Queue[Item] = queue.Queue(maxsize=queue_frames)
        self.dropped = 0
        self.captured = 0
        self.paused = threading.Event()  # set while the recorder cannot store frames (disk full)
        self.consumer_gone = threading.Event()  # set when the recorder leaves its loop
        self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _put(self, item: Item) -> None:
        """Blocking put that gives up only when the recorder has stopped consuming."""
        while not self.consumer_gone.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _loop(self) -> None:
        camera: FrameSource | None = None
        try:
            while not (self.stop.is_set() or self.shutdown.is_set()):
                if self.paused.is_set():
                    self.stop.wait(0.05)
                    continue
                if camera is None:
                    try:
                        camera = self.factory(self.source, self.format)
                    except CameraError as exc:
                        self._put(CameraFailed(str(exc)))
                        self.stop.wait(self.retry_seconds)
                        continue
                try:
                    frame = camera.read()
                except CameraError as exc:
                    camera.close()
                    camera = None
                    self._put(CameraFailed(str(exc)))
                    continue
                self.captured += 1
                if getattr(camera, "live", False):
                    try:
                        self.items.put_nowait(frame)
                    except queue.Full:
                        self.dropped += 1
                else:
                    self._put(frame)
        finally:
            if camera is not None:
                camera.close()
            self._put(CaptureEnded())
