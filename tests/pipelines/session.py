"""Run the project through a real KedroSession into a temporary data root (one run per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_parameters(env: str) -> dict:
    """The parameters a run under ``env`` sees (base soft-merged with the environment), as the project loads them."""
    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"),
        env=env,
        base_env="base",
        default_run_env="base",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


def run_session(
    data_root: Path, env: str = "tiny", params: dict[str, Any] | None = None, **run_args: Any
) -> dict[str, Any]:
    """``kedro run -e env --params data_root=...,<params>``; returns session.run()'s result."""
    bootstrap_project(PROJECT_ROOT)
    runtime = {"data_root": str(data_root), **(params or {})}
    with KedroSession.create(PROJECT_ROOT, env=env, runtime_params=runtime) as session:
        return session.run(**run_args)


def load_catalog(data_root: Path, env: str = "tiny"):
    """The project's catalog for ``env`` with data under ``data_root``."""
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(PROJECT_ROOT, env=env, runtime_params={"data_root": str(data_root)}) as session:
        return session.load_context().catalog
