"""Segments, repair and the signed manifest chain: torn files are cut back to their last complete fragment and
still play; the chain detects any edit; a full disk never costs recorded footage."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st
from video_check import Unplayable, decoded_frames, plays

from core.manifest import (
    GENESIS_HASH,
    ManifestEntry,
    ManifestError,
    check_chain,
    entry_from_json,
    entry_hash,
    entry_to_json,
    format_utc,
    sign_entry,
)
from core.signing import new_private_key
from edge.recorder.fragments import complete_prefix, count_frames, repair_segment
from edge.recorder.journal import Journal
from edge.recorder.recorder import Recorder, RecorderSettings
from edge.recorder.recovery import recover, segment_name
from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from edge.recorder.signer import SegmentSigner
from edge.recorder.storage_policy import StoragePolicy
from hardware.camera import CameraError, CaptureFormat
from simulators.camera import SyntheticScene, read_counter

KEY = new_private_key()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _entry(seq: int, prev: str, start: datetime) -> ManifestEntry:
    return sign_entry(
        ManifestEntry(
            "DEV-1",
            seq,
            format_utc(start),
            format_utc(start + timedelta(seconds=60)),
            1800,
            1000 + seq,
            "ab" * 32,
            prev,
            "kid1",
        ),
        KEY,
    )


def _chain(n: int) -> list[ManifestEntry]:
    out: list[ManifestEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        entry = _entry(seq, prev, T0 + timedelta(seconds=60 * (seq - 1)))
        out.append(entry)
        prev = entry_hash(entry)
    return out


def test_signed_chain_verifies_and_any_edit_breaks_it() -> None:
    chain = _chain(4)
    assert check_chain(chain, KEY.public_key()) == 4
    edited = [*chain[:2], replace(chain[2], frames=1799), chain[3]]
    with pytest.raises(ManifestError, match="signature"):
        check_chain(edited, KEY.public_key())
    resigned = [*chain[:2], sign_entry(replace(chain[2], frames=1799), KEY), chain[3]]
    with pytest.raises(ManifestError, match="prev_hash of segment 4"):
        check_chain(resigned, KEY.public_key())
    with pytest.raises(ManifestError, match="does not follow"):
        check_chain([chain[0], chain[2]])
    with pytest.raises(ManifestError, match="signature"):
        check_chain(chain, new_private_key().public_key())


@given(st.integers(1, 2**40), st.integers(0, 10**6), st.integers(0, 2**40), st.booleans())
def test_entry_json_round_trips_byte_for_byte(seq: int, frames: int, size: int, repaired: bool) -> None:
    entry = ManifestEntry(
        "DEV-9",
        seq,
        "2026-03-02T09:00:00.000Z",
        "2026-03-02T09:01:00.000Z",
        frames,
        size,
        "0f" * 32,
        GENESIS_HASH,
        "k",
        repaired,
        "",
    )
    again = entry_from_json(entry_to_json(entry))
    assert again == entry and entry_hash(again) == entry_hash(entry)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"seq": "1"}, "seq"),
        ({"seq": 0}, "seq"),
        ({"device_id": "../x"}, "device_id"),
        ({"sha256": "XYZ"}, "sha256"),
        ({"end_utc": "2026-03-02T08:00:00.000Z"}, "end_utc"),
        ({"start_utc": "yesterday"}, "start_utc"),
        ({"size": -1}, "size"),
        ({"extra": 1}, "unknown"),
        ({"repaired": "no"}, "repaired"),
    ],
)
def test_malformed_entries_are_refused_naming_the_field(change: dict[str, object], word: str) -> None:
    data = _chain(1)[0].to_dict() | change
    with pytest.raises(ManifestError, match=word):
        from core.manifest import parse_entry

        parse_entry(data)


def _write_segment(path: Path, frames: int, fps: int = 15) -> None:
    scene = SyntheticScene(160, 120)
    writer = SegmentWriter(path, 160, 120, fps, EncoderSettings())
    for n in range(frames):
        writer.write(scene.frame(n))
    writer.close()


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_torn_segment_is_cut_back_to_its_last_complete_fragment_andplays(
    tmp_path: Path, keep: float
) -> None:
    path = tmp_path / "seg.mp4"
    _write_segment(path, 150)  # 10 fragments of 1 s
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])  # power cut in the middle of a fragment
    result = repair_segment(path)
    assert result.truncated and path.stat().st_size == result.kept_size
    frames = count_frames(path)
    assert frames == result.fragments * 15 and frames >= int(150 * keep) - 15
    assert plays(path)
    with av.open(str(path)) as container:
        counters = [read_counter(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert counters == list(range(frames)), "what survives is exactly the first frames, in order"


def test_the_playback_check_refuses_torn_and_corrupted_video(tmp_path: Path) -> None:
    """The check the tests above rely on is not vacuous: what FFmpeg cannot decode cleanly does not "play"."""
    path = tmp_path / "seg.mp4"
    _write_segment(path, 150)
    data = path.read_bytes()
    assert decoded_frames(path) == 150
    path.write_bytes(data[: int(len(data) * 0.9)])  # torn and not repaired
    with pytest.raises(Unplayable, match=r"seg\.mp4 does not decode"):
        decoded_frames(path)
    corrupted = bytearray(data)
    middle = len(data) // 2
    corrupted[middle : middle + 200] = bytes(b ^ 0xFF for b in corrupted[middle : middle + 200])
    path.write_bytes(bytes(corrupted))
    with pytest.raises(Unplayable, match="FFmpeg complains"):
        decoded_frames(path)
    path.write_bytes(b"not a video")
    assert not plays(path)


def test_file_without_any_fragment_holds_nothing_to_keep(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 12 + b"\x00\x00\x10\x00moov")
    assert complete_prefix(path) == (0, 0)


def test_repair_at_start_closes_torn_segment_and_names_the_gap(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    signer = SegmentSigner("DEV-1", KEY, "k")
    torn = tmp_path / segment_name(1, T0)
    _write_segment(torn, 100)
    torn.write_bytes(torn.read_bytes()[:-500])
    (tmp_path / "recorder.state.json").write_text('{"boot_id": "boot-a", "clean": false}')
    closed: list[int] = []
    result = recover(tmp_path, journal, signer, 15, lambda e, p: closed.append(e.seq), boot_id="boot-b")
    assert closed == [1] and result.gap_cause == "power_loss"
    entry = Journal(tmp_path).entries()[0]
    assert entry.repaired and entry.frames == 90 and entry.end_utc == format_utc(T0 + timedelta(seconds=6))
    assert check_chain(Journal(tmp_path).entries(), KEY.public_key()) == 1


def test_journal_cuts_a_torn_last_line(tmp_path: Path) -> None:
    chain = _chain(2)
    (tmp_path / "manifest.jsonl").write_text(entry_to_json(chain[0]) + "\n" + entry_to_json(chain[1])[:40])
    journal = Journal(tmp_path)
    assert [e.seq for e in journal.entries()] == [1]
    assert (tmp_path / "manifest.jsonl").read_text().endswith("\n")


class _Frames:
    """A camera that hands out synthetic frames and stops the recorder after ``limit`` reads."""

    def __init__(self, stop: threading.Event, limit: int, fail_at: int | None = None) -> None:
        self.scene = SyntheticScene(160, 120)
        self.n = 0
        self.stop, self.limit, self.fail_at = stop, limit, fail_at

    def __call__(self, source: str, fmt: CaptureFormat) -> _Frames:
        return self

    def read(self):  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n == self.fail_at:
            raise CameraError("cable pulled")
        if self.n >= self.limit:
            self.stop.set()
        return self.scene.frame(self.n)

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_full_disk_closes_the_segment_keeps_all_footage_and_records_the_gap(tmp_path: Path) -> None:
    stop = threading.Event()
    camera = _Frames(stop, limit=70)
    full_checks = {"left": 3}

    def probe(_path: Path) -> int:
        if camera.n >= 40 and full_checks["left"] > 0:
            full_checks["left"] -= 1
            return 10**5  # disk full, until uploads free space three checks later
        return 10**10

    storage = StoragePolicy(tmp_path, reserve_bytes=10**6, probe=probe)
    settings = RecorderSettings(
        tmp_path,
        "fake",
        CaptureFormat(160, 120, 15),
        segment_seconds=2,
        storage_check_seconds=0.0,
        retry_seconds=0.01,
    )
    recorder = Recorder(settings, SegmentSigner("DEV-1", KEY, "k"), camera_factory=camera, storage=storage)
    recorder.run(stop)
    journal = Journal(tmp_path)
    assert full_checks["left"] == 0
    assert sum(e.frames for e in journal.entries()) == camera.n, "every frame captured is on disk"
    assert [g.cause for g in journal.gaps()] == ["disk_full"]
    assert check_chain(journal.entries(), KEY.public_key()) == len(journal.entries())
    assert all(plays(p) for p in tmp_path.glob("*.mp4"))


def test_low_space_is_flagged_when_less_than_two_hours_are_left(tmp_path: Path) -> None:
    policy = StoragePolicy(tmp_path, bytes_per_hour=1e9, reserve_bytes=0, probe=lambda _p: int(1.5e9))
    status = policy.check()
    assert status.low and not status.full and status.hours_left == pytest.approx(1.5)
    assert not StoragePolicy(tmp_path, bytes_per_hour=1e9, probe=lambda _p: int(5e9)).check().low


def test_camera_failure_becomes_a_recorded_gap_and_recording_resumes(tmp_path: Path) -> None:
    stop = threading.Event()
    camera = _Frames(stop, limit=60, fail_at=20)
    settings = RecorderSettings(
        tmp_path, "fake", CaptureFormat(160, 120, 15), segment_seconds=60, retry_seconds=0.01
    )
    recorder = Recorder(settings, SegmentSigner("DEV-1", KEY, "k"), camera_factory=camera)
    recorder.run(stop)
    journal = Journal(tmp_path)
    assert [g.cause for g in journal.gaps()] == ["camera_error"]
    assert [e.frames for e in journal.entries()] == [19, 40]  # reads 1-19, the failed 20th, then 21-60


def test_manifest_rotates_and_the_chain_continues_across_files(tmp_path: Path) -> None:
    chain = _chain(10)
    journal = Journal(tmp_path, rotate_every=4)
    for entry in chain:
        journal.append_entry(entry)
    names = sorted(p.name for p in tmp_path.glob("manifest*.jsonl"))
    assert names == [
        "manifest-0000000001-0000000004.jsonl",
        "manifest-0000000005-0000000008.jsonl",
        "manifest.jsonl",
    ]
    again = Journal(tmp_path, rotate_every=4)  # a restart reads only the current file and one archive line
    assert [e.seq for e in again.entries()] == [9, 10]
    assert again.next_seq() == 11 and again.chain_head() == entry_hash(chain[-1])
    assert again.entries_from(1) == chain  # nothing lost, in order
    assert check_chain(again.entries_from(1), KEY.public_key()) == 10  # one chain across the files
    assert [e.seq for e in again.entries_from(6)] == [6, 7, 8, 9, 10]


def test_a_crash_right_after_a_rotation_keeps_the_chain_head(tmp_path: Path) -> None:
    chain = _chain(9)
    journal = Journal(tmp_path, rotate_every=4)
    for entry in chain[:8]:
        journal.append_entry(entry)
    assert not (tmp_path / "manifest.jsonl").exists()  # rotated after entry 8; nothing written since
    again = Journal(tmp_path, rotate_every=4)
    assert again.entries() == [] and again.next_seq() == 9 and again.chain_head() == entry_hash(chain[7])
    with pytest.raises(ValueError, match="does not extend the chain"):
        again.append_entry(_entry(9, GENESIS_HASH, T0))  # a fresh chain cannot start over after an archive
    again.append_entry(chain[8])
    assert check_chain(Journal(tmp_path, rotate_every=4).entries_from(1), KEY.public_key()) == 9
