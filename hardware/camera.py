"""Camera capture through OpenCV ``VideoCapture``: a V4L2 device (index or path), a video file, or a stream URL.

``open_camera("0")``, ``open_camera("/dev/video0")``, ``open_camera("clip.mp4")``,
``open_camera("tcp://127.0.0.1:8554")`` (the synthetic camera serves YUV4MPEG2 there) or ``rtsp://...``.
Frames come out as BGR ``numpy`` arrays of the requested size (resized when the source differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

Frame = NDArray[np.uint8]


class CameraError(RuntimeError):
    """The camera could not be opened or stopped delivering frames."""


@dataclass(frozen=True)
class CaptureFormat:
    width: int = 1280
    height: int = 720
    fps: int = 30

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 7680 and 16 <= self.height <= 4320):
            raise ValueError(f"capture size {self.width}x{self.height} is out of range")
        if self.width % 2 or self.height % 2:
            raise ValueError("capture width and height must be even (H.264 4:2:0)")
        if not 1 <= self.fps <= 240:
            raise ValueError(f"capture rate {self.fps} fps is out of range")


class FrameSource(Protocol):
    """Anything that hands out frames: the OpenCV ``Camera`` here, or a stand-in in tests."""

    def read(self) -> Frame: ...

    def close(self) -> None: ...


class Camera:
    """One opened capture source. ``read`` returns the next frame or raises ``CameraError``."""

    def __init__(self, source: str, fmt: CaptureFormat) -> None:
        self.source = source
        self.format = fmt
        target: int | str
        if source.isdigit():
            target, backend = int(source), cv2.CAP_V4L2
        elif source.startswith("/dev/video"):
            target, backend = source, cv2.CAP_V4L2
        else:
            target, backend = source, cv2.CAP_FFMPEG
        self._cap = cv2.VideoCapture(target, backend)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open camera {source!r}")
        if backend == cv2.CAP_V4L2:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, fmt.width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, fmt.height)
            self._cap.set(cv2.CAP_PROP_FPS, fmt.fps)

    def read(self) -> Frame:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.source!r} delivered no frame")
        if frame.shape[1] != self.format.width or frame.shape[0] != self.format.height:
            frame = cv2.resize(frame, (self.format.width, self.format.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        self._cap.release()


def open_camera(source: str, fmt: CaptureFormat | None = None) -> Camera:
    return Camera(source, fmt or CaptureFormat())
