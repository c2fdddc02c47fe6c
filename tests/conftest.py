"""Shared test set-up: telemetry off, and the session helpers importable as `session`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
