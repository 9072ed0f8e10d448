"""Camera capture, handing out frames in the encoder's pixel format (yuv420p) so nothing converts twice.

The source is chosen by a string, like pyserial's URLs:

- ``"0"`` or ``"/dev/video0"``: a V4L2 camera through OpenCV ``VideoCapture`` (BGR, converted once to I420);
- ``"synthetic://1280x720@30"``: the built-in **test pattern** (like the kernel's ``vivid`` driver): a moving
  bar and a 24-bit frame counter strip, generated directly in I420, paced in real time;
- anything else (``tcp://host:port`` YUV4MPEG2 from the camera simulator, ``rtsp://...``, a file): opened with
  FFmpeg through PyAV, whose decoded frames go to the encoder as they are (no BGR round trip).

A frame is an ``av.VideoFrame`` or a numpy array (``HxWx3`` BGR or ``(H*3/2)xW`` I420); ``as_yuv420p`` turns
any of them into a yuv420p ``VideoFrame`` of the capture size.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

import av
import cv2
import numpy as np
from av.container import InputContainer
from numpy.typing import NDArray

Frame = NDArray[np.uint8] | av.VideoFrame
SYNTHETIC = re.compile(r"^synthetic://(?:(\d+)x(\d+))?(?:@(\d+))?/?$")
COUNTER_BITS = 24


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
    """Anything that hands out frames. ``live`` sources (a real camera) keep running while nobody reads."""

    def read(self) -> Frame: ...

    def close(self) -> None: ...


def as_yuv420p(frame: Frame, width: int, height: int) -> av.VideoFrame:
    """The frame as a yuv420p ``VideoFrame`` of ``width`` x ``height`` (no copy when it already is one)."""
    if isinstance(frame, av.VideoFrame):
        if frame.format.name == "yuv420p" and frame.width == width and frame.height == height:
            return frame
        return frame.reformat(width=width, height=height, format="yuv420p")
    image: NDArray[np.uint8] = frame
    if image.ndim == 3:
        if image.shape[1] != width or image.shape[0] != height:
            image = np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
        image = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), np.uint8)
    if image.shape != (height * 3 // 2, width):
        raise CameraError(f"frame of shape {image.shape} is not I420 {width}x{height}")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="yuv420p")


def plane(frame: av.VideoFrame, index: int) -> NDArray[np.uint8]:
    """A writable ``rows x width`` numpy view of one plane of a yuv420p frame (strides padding away)."""
    p = frame.planes[index]
    rows = frame.height if index == 0 else frame.height // 2
    cols = frame.width if index == 0 else frame.width // 2
    return np.frombuffer(memoryview(p), np.uint8).reshape(rows, p.line_size)[:, :cols]


class OpenCvCamera:
    """A V4L2 camera through OpenCV ``VideoCapture``."""

    live = True

    def __init__(self, source: str, fmt: CaptureFormat) -> None:
        self.source = source
        self.format = fmt
        target: int | str = int(source) if source.isdigit() else source
        self._cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open camera {source!r}")
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, fmt.width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, fmt.height)
        self._cap.set(cv2.CAP_PROP_FPS, fmt.fps)

    def read(self) -> Frame:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.source!r} delivered no frame")
        return as_yuv420p(np.asarray(frame, np.uint8), self.format.width, self.format.height)

    def close(self) -> None:
        self._cap.release()


class StreamCamera:
    """A stream URL or file opened with FFmpeg (PyAV); decoded frames are passed on without conversion."""

    def __init__(self, source: str, fmt: CaptureFormat) -> None:
        self.source = source
        self.format = fmt
        self.live = "://" in source
        options = {"rw_timeout": "5000000"} if source.startswith("tcp://") else {}
        try:
            # The camera simulator serves YUV4MPEG2; FFmpeg cannot probe a format from a tcp:// stream name.
            fmt_name = "yuv4mpegpipe" if source.startswith("tcp://") else None
            self._container: InputContainer = av.open(source, format=fmt_name, options=options, timeout=5.0)
            self._frames = self._container.decode(video=0)
        except (av.FFmpegError, OSError) as exc:
            raise CameraError(f"cannot open camera {source!r}: {exc}") from exc

    def read(self) -> Frame:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError, OSError) as exc:
            raise CameraError(
                f"camera {self.source!r} delivered no frame ({exc or 'end of stream'})"
            ) from exc
        return as_yuv420p(frame, self.format.width, self.format.height)

    def close(self) -> None:
        self._container.close()


class TestPattern:
    """Built-in test-pattern source (``synthetic://WxH@fps``): grey ramp, a moving bar, a frame counter strip.

    Frames come in real time (``read`` waits for the next frame time). The counter is written as 24 black or
    white blocks along the top edge, which survive H.264, so a recording tells which frames it holds."""

    __test__ = False
    live = True

    def __init__(self, fmt: CaptureFormat) -> None:
        self.format = fmt
        w, h = fmt.width, fmt.height
        ramp = (
            np.linspace(16, 235, w, dtype=np.float32)[None, :] * 0.5
            + np.linspace(16, 235, h, dtype=np.float32)[:, None] * 0.5
        )
        self._luma = ramp.astype(np.uint8)
        self._chroma = np.full((h // 2, w), 128, np.uint8)  # U and V planes, stacked as I420 rows
        self._block_w = max(2, w // (COUNTER_BITS + 8)) // 2 * 2
        self._block_h = max(8, h // 24) // 2 * 2
        self._bar_w = max(2, w // 16)
        self._t0 = time.monotonic()
        self.n = -1

    def read(self) -> Frame:
        self.n += 1
        due = self._t0 + self.n / self.format.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        w, h = self.format.width, self.format.height
        frame = np.empty((h * 3 // 2, w), np.uint8)
        y = frame[:h]
        y[:] = self._luma
        x = (self.n * 8) % (w - self._bar_w)
        y[:, x : x + self._bar_w] = 235
        bw, bh = self._block_w, self._block_h
        y[:bh, : bw * COUNTER_BITS] = 16
        for bit in range(COUNTER_BITS):
            if (self.n >> bit) & 1:
                y[:bh, bit * bw : (bit + 1) * bw] = 235
        frame[h:] = self._chroma
        return av.VideoFrame.from_ndarray(frame, format="yuv420p")

    def close(self) -> None:
        pass


def read_pattern_counter(luma: NDArray[np.uint8]) -> int:
    """The frame number ``TestPattern`` drew into a (decoded) luma plane."""
    h, w = luma.shape
    bw, bh = max(2, w // (COUNTER_BITS + 8)) // 2 * 2, max(8, h // 24) // 2 * 2
    value = 0
    for bit in range(COUNTER_BITS):
        block = luma[bh // 4 : bh * 3 // 4, bit * bw + bw // 4 : (bit + 1) * bw - bw // 4]
        if float(block.mean()) > 127:
            value |= 1 << bit
    return value


def parse_synthetic(source: str, default: CaptureFormat) -> CaptureFormat:
    """``synthetic://1280x720@30`` → its format; missing parts come from ``default``."""
    match = SYNTHETIC.match(source)
    if match is None:
        raise CameraError(f"bad synthetic source {source!r}: expected synthetic://WIDTHxHEIGHT@FPS")
    w, h, fps = match.groups()
    try:
        return CaptureFormat(
            int(w) if w else default.width, int(h) if h else default.height, int(fps) if fps else default.fps
        )
    except ValueError as exc:
        raise CameraError(f"bad synthetic source {source!r}: {exc}") from exc


def open_camera(source: str, fmt: CaptureFormat | None = None) -> FrameSource:
    """Open the source named by ``source`` (see the module docstring)."""
    fmt = fmt or CaptureFormat()
    if source.startswith("synthetic:"):
        pattern = parse_synthetic(source, fmt)
        if pattern != fmt:
            raise CameraError(f"synthetic source {source!r} does not match the capture format {fmt}")
        return TestPattern(pattern)
    if source.isdigit() or source.startswith("/dev/video"):
        return OpenCvCamera(source, fmt)
    return StreamCamera(source, fmt)


Camera = open_camera
