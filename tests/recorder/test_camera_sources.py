"""Camera sources chosen by string: the built-in synthetic test pattern, and bad source strings."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from hardware.camera import CameraError, CaptureFormat, open_camera, read_pattern_counter


def test_synthetic_pattern_frames_carry_a_counter_that_survives_encoding(tmp_path: Path) -> None:
    fmt = CaptureFormat(320, 240, 30)
    camera = open_camera("synthetic://320x240@30", fmt)
    writer = SegmentWriter(tmp_path / "seg.mp4", 320, 240, 30, EncoderSettings())
    for _ in range(40):
        writer.write(camera.read())
    writer.close()
    camera.close()
    with av.open(str(tmp_path / "seg.mp4")) as container:
        counters = [
            read_pattern_counter(np.asarray(f.to_ndarray(format="gray"), np.uint8))
            for f in container.decode(video=0)
        ]
    assert counters == list(range(40))


@pytest.mark.parametrize("source", ["synthetic://320x24x@30", "synthetic://640x480@30", "synthetic://odd"])
def test_bad_or_mismatched_synthetic_source_is_refused_with_the_reason(source: str) -> None:
    with pytest.raises(CameraError, match="synthetic"):
        open_camera(source, CaptureFormat(320, 240, 30))


def test_unopenable_stream_names_the_source() -> None:
    with pytest.raises(CameraError, match="nope"):
        open_camera("/nonexistent/nope.mp4", CaptureFormat(320, 240, 30))
