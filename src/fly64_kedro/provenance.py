"""Provenance of a run for the report: git commit and dirty flag, package versions, run start and end time.

Imports neither torch nor TensorFlow (versions come from the installed distributions' metadata), so the Kedro
process stays free of both frameworks.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# Set by ``RunClockHook`` when a pipeline starts; inherited by spawned worker processes.
RUN_STARTED_ENV = "FLY64_RUN_STARTED"
PACKAGES = (
    "fly64_kedro",
    "kedro",
    "numpy",
    "scipy",
    "scikit-image",
    "pandas",
    "matplotlib",
    "torch",
    "torchvision",
    "ptychi",
    "tensorflow",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """{distribution: version}, "not installed" where it is missing."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """{"commit": hash or None, "dirty": bool or None}; None where git or the repository is unavailable."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance(parameters: dict[str, Any]) -> dict[str, Any]:
    """Everything the report's provenance block shows; ``finished`` is now (the report is the last node)."""
    return {
        **git_state(),
        "started": os.environ.get(RUN_STARTED_ENV, "unknown (not started through a Kedro session)"),
        "finished": now_utc(),
        "seeds": dict(parameters.get("study", {}).get("seeds", {})),
        "packages": package_versions(),
        "parameters": parameters,
    }
