"""Files a driver gives with a complaint (photos, video, a scanned letter): the type is found in the content
(magic bytes), never taken from the name or the browser; each type has a size limit; the file is kept in the
video store under ``cases/<case>/<sha256>`` and its SHA-256 recorded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    media_type: str
    words: str
    max_bytes: int


JPEG = FileKind("image/jpeg", "фото JPEG / JPEG photo", 25 * MB)
PNG = FileKind("image/png", "изображение PNG / PNG image", 25 * MB)
WEBP = FileKind("image/webp", "фото WebP / WebP photo", 25 * MB)
HEIC = FileKind("image/heic", "фото HEIC / HEIC photo", 25 * MB)
MP4 = FileKind("video/mp4", "видео MP4 / MP4 video", 0)  # the configured limit (``[review] case_file_max_bytes``)
QUICKTIME = FileKind("video/quicktime", "видео MOV / QuickTime video", 0)
WEBM = FileKind("video/webm", "видео WebM/MKV / WebM or Matroska video", 0)
PDF = FileKind("application/pdf", "документ PDF / PDF document", 25 * MB)
HEAD_BYTES = 32

_HEIC_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"}
_QT_BRANDS = {b"qt  "}


class CaseFileRefused(ValueError):
    """A file that is not kept: the message says why (type not allowed, too large, empty)."""


def sniff(head: bytes) -> FileKind | None:
    """The kind of a file from its first bytes, or None for anything not allowed."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return HEIC
        if brand in _QT_BRANDS:
            return QUICKTIME
        return MP4
    return None


def limit_of(kind: FileKind, video_limit: int) -> int:
    return kind.max_bytes or video_limit


def safe_name(name: str) -> str:
    """The file's name as shown (no path, no control characters, at most 200 characters)."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return (cleaned or "file")[:200]


@dataclass
class CheckedStream:
    """The upload's pieces, its kind found from the first bytes before any is passed on."""

    kind: FileKind
    pieces: Iterator[bytes]


def checked(pieces: Iterable[bytes], video_limit: int) -> CheckedStream:
    """Read enough of ``pieces`` to know the kind (``CaseFileRefused`` if not allowed or empty), and give
    back a stream of all the bytes."""
    iterator = iter(pieces)
    head = b""
    buffered: list[bytes] = []
    for piece in iterator:
        buffered.append(piece)
        head += piece
        if len(head) >= HEAD_BYTES:
            break
    if not head:
        raise CaseFileRefused("файл пуст / the file is empty")
    kind = sniff(head[:HEAD_BYTES])
    if kind is None:
        raise CaseFileRefused(
            "тип файла не разрешён: фото (JPEG, PNG, WebP, HEIC), видео (MP4, MOV, WebM) или PDF / "
            "file type not allowed: photos (JPEG, PNG, WebP, HEIC), video (MP4, MOV, WebM) or PDF, "
            "judged by the content"
        )

    def everything() -> Iterator[bytes]:
        yield from buffered
        yield from iterator

    return CheckedStream(kind, everything())
