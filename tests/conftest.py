"""Shared fixtures: the project root and a small study configuration for session runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT
