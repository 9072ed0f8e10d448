"""Shared helpers of the recorder tests (imported by the tests through sys.path, like the sync harness)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
