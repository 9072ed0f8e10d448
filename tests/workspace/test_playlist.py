"""The playlist the player plays: each stored fMP4 file's init data and fragments as byte ranges of the file
itself (never re-encoded), on the wall clock, a discontinuity before each file; and the layout reader that
finds those ranges refuses malformed or hostile bytes with a reason instead of failing in any other way."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.video.fmp4 import Fmp4Error, Fmp4Layout, Fmp4Scanner, scan, scan_at
from server.video.playlist import StoredSegment, chunks, make_playlist

from .conftest import DEVICE, STARTS, Workspace
from .footage_support import Shift


@pytest.fixture(scope="module")
def files(shift: Shift) -> list[bytes]:
    return [p.read_bytes() for p in shift.files]


def test_the_layout_of_a_recorded_segment_is_its_init_data_and_one_fragment_per_second(files: list[bytes]) -> None:
    layout = scan(files[0])
    assert files[0][4:8] == b"ftyp" and files[0][layout.init_size + 4 : layout.init_size + 8] == b"moof"
    assert len(layout.fragments) == 2 and layout.duration_s == pytest.approx(2.0)
    assert layout.fragments[0].offset == layout.init_size
    end = layout.fragments[-1].offset + layout.fragments[-1].size
    assert layout.size == len(files[0]) and files[0][end + 4 : end + 8] == b"mfra", "then the random-access index"
    assert [f.decode_time for f in layout.fragments] == [0, layout.fragments[0].duration]


def test_the_same_layout_whether_streamed_in_any_pieces_or_read_at_random(files: list[bytes]) -> None:
    whole = scan(files[1])
    for piece in (1, 7, 4096):
        scanner = Fmp4Scanner()
        for i in range(0, len(files[1]), piece):
            scanner.feed(files[1][i : i + piece])
        assert scanner.finish() == whole
    reads: list[int] = []

    def read(offset: int, length: int) -> bytes:
        reads.append(length)
        return files[1][offset : offset + length]

    assert scan_at(read, len(files[1])) == whole
    assert sum(reads) < len(files[1]) // 2, "media data is never read, only box headers and moof boxes"
    assert Fmp4Layout.from_json(whole.to_json()) == whole


def test_the_playlist_names_byte_ranges_of_the_stored_files_on_the_wall_clock(files: list[bytes]) -> None:
    segments = [StoredSegment(DEVICE, n + 1, STARTS[n], scan(data)) for n, data in enumerate(files)]
    text = make_playlist(segments, lambda d, s: f"/content/{d}/{s}", chunk_seconds=1.0)
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:VOD"] and lines[-1] == "#EXT-X-ENDLIST"
    assert text.count("#EXT-X-DISCONTINUITY\n") == len(files) - 1, "each file starts its own timeline"
    maps = re.findall(r'#EXT-X-MAP:URI="/content/DEV-WS-0001/(\d)",BYTERANGE="(\d+)@0"', text)
    assert [(int(s), int(n)) for s, n in maps] == [(n + 1, scan(d).init_size) for n, d in enumerate(files)]
    dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert dates == ["2026-03-02T09:10:00.000Z", "2026-03-02T09:10:02.000Z", "2026-03-02T09:10:04.000Z",
                     "2026-03-02T09:11:06.000Z", "2026-03-02T09:11:08.000Z"], "each file's first frame; after the gap it jumps"  # fmt: skip
    assert text.count("#EXTINF:1.000,") == 10, "one-second fragments, each its own media segment here"
    for length, offset, url in re.findall(r"#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)", text):
        data = files[int(url.rsplit("/", 1)[1]) - 1]
        assert int(offset) + int(length) <= len(data) and data[int(offset) + 4 : int(offset) + 8] == b"moof"


def test_fragments_group_into_chunks_of_about_the_target_length(files: list[bytes]) -> None:
    segment = StoredSegment(DEVICE, 1, STARTS[0], scan(files[0]))
    assert [c.duration_s for c in chunks(segment, 4.0)] == [pytest.approx(2.0)]
    one = chunks(segment, 0.5)
    assert [c.start - STARTS[0] for c in one] == [timedelta(0), timedelta(seconds=1)]
    assert one[0].offset + one[0].length == one[1].offset


@pytest.mark.parametrize("ws", ["filesystem", "s3"], indirect=True)
def test_the_playlist_route_serves_the_stops_window_to_a_logged_in_reviewer(ws: Workspace) -> None:
    page_url = "/review/api/footage/DEV-WS-0001.m3u8"
    params = {"start": "2026-03-02T14:08:00+05:00", "end": "2026-03-02T14:13:10+05:00", "protocol": "KZ-1"}
    ws.client.cookies.clear()
    assert ws.client.get(page_url, params=params).status_code == 401
    assert ws.login("anna") == 303
    response = ws.client.get(page_url, params=params)
    assert response.status_code == 200 and response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.text.count("#EXT-X-MAP") == 5
    for bad, word in (({**params, "end": "2026-03-02T14:00:00+05:00"}, "after start"),
                      ({**params, "end": "2026-03-04T14:00:00+05:00"}, "24 hours"),
                      ({**params, "start": "2026-03-02T14:08:00"}, "start")):  # fmt: skip
        refused = ws.client.get(page_url, params=bad)
        assert refused.status_code == 400 and word in refused.json()["detail"], (bad, refused.text)
    assert ws.client.get("/review/api/footage/bad%20id.m3u8", params=params).status_code == 400


def _boxes() -> st.SearchStrategy[bytes]:
    kinds = st.sampled_from([b"ftyp", b"moov", b"moof", b"mdat", b"free", b"trak", b"mdhd", b"trun", b"tfhd"])
    box = st.tuples(st.integers(0, 2**32 - 1), kinds, st.binary(max_size=64)).map(
        lambda t: t[0].to_bytes(4, "big") + t[1] + t[2]
    )
    return st.lists(box, max_size=8).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=2048), _boxes()))
def test_random_bytes_are_refused_with_a_reason_never_another_error(data: bytes) -> None:
    try:
        layout = scan(data)
    except Fmp4Error as exc:
        assert str(exc)
        return
    assert layout.size == len(data) and layout.fragments


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.integers(0, 10_000))
def test_a_mutated_or_cut_real_segment_is_read_or_refused_with_a_reason(files: list[bytes], position: int, value: int, cut: int) -> None:
    data = bytearray(files[2])
    data[position % len(data)] = value
    data = data[: len(data) - cut % 64] if cut % 3 == 0 else data
    for reader in (lambda: scan(bytes(data)), lambda: scan_at(lambda o, n: bytes(data[o : o + n]), len(data))):
        try:
            layout = reader()
        except Fmp4Error:
            continue
        assert layout.size == len(data)
        assert all(f.offset + f.size <= len(data) for f in layout.fragments)
