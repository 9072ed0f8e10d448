"""Writes one segment: H.264 through PyAV into fragmented MP4, one fragment per 1 s GOP, flushed, and fsynced on
a background thread.

``movflags=frag_keyframe+empty_moov+default_base_moof`` makes every GOP a self-contained ``moof``+``mdat``
and ``flush_packets=1`` hands each one to the OS as soon as it is complete, so a kill loses at most the
GOP being built. The file is created exclusively: an existing segment is never overwritten.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.video.stream import VideoStream

from hardware.camera import Frame, as_yuv420p

MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder choice; ``codec`` may be a hardware encoder such as ``h264_v4l2m2m``."""

    codec: str = "libx264"
    preset: str = "ultrafast"
    tune: str = "zerolatency"
    bitrate: int = 0  # bits per second; 0 = encoder default (CRF for libx264)
    extra: dict[str, str] = field(default_factory=dict)

    def options(self, fps: int) -> dict[str, str]:
        if self.codec == "libx264":
            opts = {
                "preset": self.preset,
                "tune": self.tune,
                "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0",
            }
        else:
            opts = {}
        opts.update(self.extra)
        return opts


class _FragmentSyncer:
    """fsyncs the segment on its own thread each time a fragment is complete, so encoding never waits on flash."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self._wanted = threading.Event()
        self._done = False
        self.syncs = 0
        self._thread = threading.Thread(target=self._loop, name=f"fsync-{name}", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._done = True
        self._wanted.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._done:
                return
            try:
                os.fsync(self._fd)
                self.syncs += 1
            except OSError:
                return  # the writer sees the disk error itself; the final fsync at close reports it


@dataclass(frozen=True)
class ClosedSegmentFile:
    path: Path
    frames: int
    size: int


class SegmentWriter:
    """Encodes frames (yuv420p, or BGR converted once) into ``path``; ``close`` finishes, fsyncs and reports frames and bytes."""

    def __init__(self, path: Path, width: int, height: int, fps: int, encoder: EncoderSettings) -> None:
        self.path = path
        self.fps = fps
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        self._sync_fd = os.open(path, os.O_RDONLY)
        os.close(fd)
        self._container = av.open(str(path), mode="w", format="mp4", options=dict(MP4_OPTIONS))
        stream = cast(
            VideoStream,
            self._container.add_stream(encoder.codec, rate=Fraction(fps, 1), options=encoder.options(fps)),
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = fps
        if encoder.bitrate:
            stream.codec_context.bit_rate = encoder.bitrate
        self._stream = stream
        self.frames = 0
        self.fragments = 0
        self._closed = False
        self._syncer = _FragmentSyncer(self._sync_fd, path.name)

    def write(self, frame: Frame) -> None:
        video_frame = as_yuv420p(frame, self._stream.width, self._stream.height)
        video_frame.pts = self.frames
        for packet in self._stream.encode(video_frame):
            self._mux(packet)
        self.frames += 1

    def _mux(self, packet: av.Packet) -> None:
        closes_fragment = bool(packet.is_keyframe) and self.frames > 0
        self._container.mux(packet)
        if closes_fragment:
            # The muxer wrote the previous fragment when this keyframe arrived: make it durable.
            self.fragments += 1
            self._syncer.request()

    def close(self) -> ClosedSegmentFile:
        if not self._closed:
            self._closed = True
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
                self._syncer.stop()
                os.fsync(self._sync_fd)
            finally:
                os.close(self._sync_fd)
        return ClosedSegmentFile(self.path, self.frames, self.path.stat().st_size)

    def abandon(self) -> None:
        """Drop the writer without finishing the file (after a write error); repair cuts it back later."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (OSError, av.FFmpegError):
            pass
        finally:
            self._syncer.stop()
            os.close(self._sync_fd)
