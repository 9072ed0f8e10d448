"""Burn-in of UTC time, device ID, officer badge and GPS position into the bottom-left corner of each frame.

The text changes once a second at most, so the band is drawn once per distinct text and pasted into the luma plane of every
frame (a slice copy), which keeps the per-frame cost far below the encoder's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from hardware.camera import plane


@dataclass(frozen=True)
class OverlayFix:
    """A GPS position for the overlay; ``None`` fields mean no fix."""

    latitude: float | None = None
    longitude: float | None = None


def overlay_text(moment: datetime, device_id: str, badge: str, fix: OverlayFix | None) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fix is None or fix.latitude is None or fix.longitude is None:
        where = "GPS no fix"
    else:
        lat = f"{abs(fix.latitude):.5f}{'N' if fix.latitude >= 0 else 'S'}"
        lon = f"{abs(fix.longitude):.5f}{'E' if fix.longitude >= 0 else 'W'}"
        where = f"{lat} {lon}"
    return f"{stamp}  DEV {device_id}  BADGE {badge}  {where}"


class Overlay:
    """Draws the text band into the luma plane of yuv420p frames (chroma set to neutral grey under it)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self._scale = max(0.35, height / 1080)
        self._thickness = max(1, round(height / 540))
        (_, text_h), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, self._scale, self._thickness)
        self._band_h = min(height, (text_h + base + 8 + 1) // 2 * 2)
        self._cached_text = ""
        self._band: NDArray[np.uint8] = np.full((self._band_h, width), 16, np.uint8)

    def _render(self, text: str) -> None:
        band = np.full((self._band_h, self.width), 16, np.uint8)
        cv2.putText(
            band,
            text,
            (4, self._band_h - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            self._scale,
            235,
            self._thickness,
            cv2.LINE_AA,
        )
        self._band = band
        self._cached_text = text

    def apply(self, frame: av.VideoFrame, text: str) -> av.VideoFrame:
        """Writes the band into the yuv420p ``frame`` in place and returns it."""
        if text != self._cached_text:
            self._render(text)
        plane(frame, 0)[self.height - self._band_h :, :] = self._band
        chroma_rows = self._band_h // 2
        plane(frame, 1)[self.height // 2 - chroma_rows :, :] = 128
        plane(frame, 2)[self.height // 2 - chroma_rows :, :] = 128
        return frame
