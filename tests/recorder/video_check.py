"""Does a segment play? Every frame of its video stream is decoded by FFmpeg's own libraries (through PyAV, a
dependency, so no ``ffprobe`` is needed) and FFmpeg must log no error on the way: what ``ffprobe -v error
-count_frames`` checks, in-process."""

from __future__ import annotations

from pathlib import Path

import av
import av.logging


class Unplayable(AssertionError):
    pass


def decoded_frames(path: Path) -> int:
    """The number of frames decoded from the first video stream; ``Unplayable`` names any error FFmpeg reports."""
    before = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:  # the decoder logs from its own threads too
            try:
                with av.open(str(path)) as container:
                    frames = sum(1 for _ in container.decode(video=0))
            except (av.error.FFmpegError, IndexError) as exc:  # IndexError: no video stream
                raise Unplayable(f"{path.name} does not decode: {exc}") from exc
    finally:
        av.logging.set_level(before)
    errors = [f"[{name}] {message.strip()}" for level, name, message in logs if level <= av.logging.ERROR]
    if errors:
        raise Unplayable(f"FFmpeg complains about {path.name}: {'; '.join(errors)}")
    return frames


def plays(path: Path) -> bool:
    try:
        return decoded_frames(path) > 0
    except Unplayable:
        return False
