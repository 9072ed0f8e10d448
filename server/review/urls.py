"""The workspace's URLs, made in one place: a protocol's page, its footage playlist and segment content, a
case. Protocol numbers may hold any character: each is percent-encoded as one path segment, or passed as a
query parameter when it is a dot segment that browsers would resolve away."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote


def protocol_url(number: str, back: str = "") -> str:
    """The stop page; ``back`` is the query string of the search it was found by (its "back" link)."""
    tail = f"from={quote(back, safe='')}" if back else ""
    if number in (".", ".."):
        return f"/review/protocol?number={quote(number, safe='')}" + (f"&{tail}" if tail else "")
    return f"/review/protocols/{quote(number, safe='')}" + (f"?{tail}" if tail else "")


def content_url(device_id: str, seq: int, protocol: str = "") -> str:
    url = f"/api/video/segments/{quote(device_id, safe='')}/{seq}/content"
    return f"{url}?protocol={quote(protocol, safe='')}" if protocol else url


def playlist_url(device_id: str, start: datetime, end: datetime, protocol: str) -> str:
    query = f"start={quote(start.isoformat())}&end={quote(end.isoformat())}&protocol={quote(protocol, safe='')}"
    return f"/review/api/footage/{quote(device_id, safe='')}.m3u8?{query}"


def case_url(case_id: int) -> str:
    return f"/review/cases/{case_id}"
