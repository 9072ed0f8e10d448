"""Fixtures of the process tests: helpers that look at real processes through /proc and at real ports."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
