"""Benchmark of the recorder at 720p30 from the synthetic camera.

Measures, in one run: the recorder process's CPU seconds per recorded second (steady state, read from
/proc while it records; the one-off start-up is printed apart) against a bare PyAV encode loop of the same
frames, as the camera sends them (I420), at the same settings (target <= 1.3x) and against OpenCV's VideoWriter (mp4v, the only encoder pip
OpenCV has); and dropped frames, read from the frame counters burned into the recording (target 0).
``--seconds`` sets the recording length (default 20 s for CI; the issue's figure is a 600 s run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from core.signing import new_private_key
from edge.identity import write_key
from edge.recorder.journal import Journal
from edge.recorder.recorder import read_status
from edge.recorder.segment_writer import MP4_OPTIONS, EncoderSettings
from simulators.camera import SyntheticCameraServer, SyntheticScene, read_counter

W, H, FPS = 1280, 720, 30


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_recording(rec: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(rec)
        total = status.get("frames_total") if status else None
        if isinstance(total, int) and total > FPS:
            return
        time.sleep(0.05)
    raise RuntimeError("the recorder did not start recording")


@dataclass
class Run:
    steady_cpu_per_s: float  # CPU s per wall s while recording (start-up excluded)
    total_cpu: float  # including Python start-up, recovery and the final close
    frames: int
    first: int
    last: int
    dropped_by_capture: int


def record(seconds: float, work: Path) -> Run:
    write_key(work / "key.pem", new_private_key())
    camera = SyntheticCameraServer(W, H, FPS).start()
    rec = work / "rec"
    cmd = [
        sys.executable,
        "-m",
        "edge.recorder.process",
        "--dir",
        str(rec),
        "--camera",
        camera.url,
        "--device-id",
        "DEV-BENCH",
        "--key-file",
        str(work / "key.pem"),
        "--segment-seconds",
        "10",
        "--log-level",
        "WARNING",
    ]
    before = children_cpu()
    proc = subprocess.Popen(cmd)
    wait_recording(rec)
    cpu0, t0 = process_cpu(proc.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = process_cpu(proc.pid), time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    total = children_cpu() - before
    camera.stop()
    status = read_status(rec) or {}
    entries = Journal(rec).entries()
    frames = sum(e.frames for e in entries)
    files = sorted(rec.glob("*.mp4"))
    first = last = None
    for path in (files[0], files[-1]):
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                n = read_counter(frame.to_ndarray(format="bgr24"))
                first = n if first is None else first
                last = n
    assert first is not None and last is not None
    dropped = status.get("frames_dropped", 0)
    return Run(
        (cpu1 - cpu0) / (t1 - t0),
        total,
        frames,
        first,
        last,
        int(dropped) if isinstance(dropped, int) else -1,
    )


def pyav_baseline(first: int, last: int, work: Path) -> float:
    """CPU seconds of a bare PyAV loop encoding the same frames (as the camera sends them: I420) at the same
    settings into the same fragmented MP4; drawing the frames is not counted."""
    scene = SyntheticScene(W, H)
    container = av.open(str(work / "baseline.mp4"), mode="w", format="mp4", options=dict(MP4_OPTIONS))
    settings = EncoderSettings()
    stream = cast(
        VideoStream,
        container.add_stream(settings.codec, rate=Fraction(FPS, 1), options=settings.options(FPS)),
    )
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.codec_context.gop_size = FPS
    spent = 0.0
    for pts, n in enumerate(range(first, last + 1)):
        i420 = np.asarray(cv2.cvtColor(scene.frame(n), cv2.COLOR_BGR2YUV_I420), np.uint8)
        start = time.process_time()
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = pts
        for packet in stream.encode(frame):
            container.mux(packet)
        spent += time.process_time() - start
    start = time.process_time()
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return spent + time.process_time() - start


def opencv_baseline(first: int, last: int, work: Path) -> float:
    """CPU seconds of OpenCV's VideoWriter (mp4v, BGR input) on the same frames; drawing not counted."""
    scene = SyntheticScene(W, H)
    out = cv2.VideoWriter(str(work / "opencv.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    spent = 0.0
    for n in range(first, last + 1):
        image = scene.frame(n)
        start = time.process_time()
        out.write(image)
        spent += time.process_time() - start
    start = time.process_time()
    out.release()
    return spent + time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = record(args.seconds, work)
        shown = run.last - run.first + 1
        seconds = shown / FPS
        base = pyav_baseline(run.first, run.last, work) / seconds
        ocv = opencv_baseline(run.first, run.last, work) / seconds
    per_s = run.steady_cpu_per_s
    dropped = shown - run.frames
    print(
        f"recorded {run.frames / FPS:.1f} s ({run.frames} frames), camera showed {shown}: dropped {dropped} "
        f"({run.dropped_by_capture} counted by the capture queue)"
    )
    print(
        f"recorder CPU {per_s:.3f} s/s steady ({run.total_cpu / seconds:.3f} s/s with start-up, "
        f"{run.total_cpu - per_s * seconds:.2f} s one-off); bare PyAV {base:.3f} s/s; OpenCV mp4v {ocv:.3f} s/s "
        f"(recorder/OpenCV {per_s / ocv:.2f}x)"
    )
    ratio = per_s / base
    print(
        json.dumps(
            {
                "bench": "recorder_cpu_720p30",
                "value": round(per_s, 4),
                "unit": "cpu_s_per_recorded_s",
                "baseline": round(base, 4),
                "ratio": round(ratio, 3),
                "target": 1.3,
                "dropped_frames": dropped,
                "with_startup": round(run.total_cpu / seconds, 4),
                "opencv_mp4v": round(ocv, 4),
                "pass": bool(ratio <= 1.3 and dropped == 0),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
