"""``fly64-verify``: check a data root. Every dataset of the pipeline that exists is loaded, which checks NPZ files
against their contract; the report lists what is missing, corrupt (unreadable, truncated, breaking its contract) or
a failed job, and prints the command that redoes exactly those and what depends on them.

    fly64-verify --data-root /shared/fly64 -e paper

Exit status 0 when everything exists and loads and no job failed, 1 otherwise. Skipped jobs (a view with too few
positions) are reported but are not errors: rerunning them would skip them again.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline

from fly64_kedro.record import Record

PROBLEMS = ("missing", "corrupt", "failed")


@dataclass(frozen=True)
class Finding:
    """The state of one dataset: ok, skipped, or one of ``PROBLEMS``, with a detail (error, reason)."""

    dataset: str
    path: str
    state: str
    detail: str = ""


def check_dataset(name: str, dataset: Any) -> Finding:
    """Load ``dataset`` if it exists (an NPZ load checks its contract) and say what state it is in."""
    path = str(getattr(dataset, "path", ""))
    if not dataset.exists():
        return Finding(name, path, "missing")
    try:
        data = dataset.load()
    except Exception as exc:  # noqa: BLE001 - any load error makes the file corrupt for this report
        return Finding(name, path, "corrupt", f"{type(exc).__name__}: {exc}")
    finally:
        dataset.release()
    if isinstance(data, Record) and data.status in ("failed", "skipped"):
        return Finding(name, path, data.status, str(data.meta.get("reason", "")))
    return Finding(name, path, "ok")


def check_data_root(catalog: Any, pipeline: Pipeline) -> list[Finding]:
    """One finding per dataset of ``pipeline`` (parameters excluded), in sorted name order."""
    names = sorted(n for n in pipeline.datasets() if not n.startswith("params:") and n != "parameters")
    return [check_dataset(name, catalog[name]) for name in names]


def nodes_to_redo(pipeline: Pipeline, datasets: Iterable[str]) -> list[str]:
    """Names of the nodes that write ``datasets`` and of every node downstream of them, in run order."""
    producers = [n.name for n in pipeline.nodes if set(n.outputs) & set(datasets)]
    return [n.name for n in pipeline.from_nodes(*producers).nodes] if producers else []


def redo_command(env: str, data_root: str, pipeline_name: str, pipeline: Pipeline, redo: list[str]) -> str:
    """The ``kedro run`` command that runs exactly ``redo`` (the whole pipeline when that is all of it)."""
    parts = ["kedro", "run", "-e", env, "--params", f"data_root={data_root}"]
    if len(redo) == len(pipeline.nodes):
        return shlex.join(parts + ([] if pipeline_name == "__default__" else ["--pipeline", pipeline_name]))
    return shlex.join([*parts, f"--nodes={','.join(redo)}"])


def report(findings: list[Finding], leftovers: list[Path], command: str | None) -> str:
    """The human-readable report."""
    counts = {state: sum(f.state == state for f in findings) for state in ("ok", "skipped", *PROBLEMS)}
    lines = [f"{len(findings)} datasets: " + ", ".join(f"{n} {state}" for state, n in counts.items())]
    for state in (*PROBLEMS, "skipped"):
        for finding in (f for f in findings if f.state == state):
            detail = f"\n         {finding.detail}" if finding.detail else ""
            lines.append(f"{state:8} {finding.dataset}  {finding.path}{detail}")
    lines += [f"leftover temporary file of a killed save (safe to delete): {p}" for p in leftovers]
    if command:
        lines += ["To redo exactly these and what depends on them:", f"  {command}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data", help="the run's data_root (default: data)")
    parser.add_argument("-e", "--env", default="local", help="Kedro environment of the run (default: local)")
    parser.add_argument("--pipeline", default="__default__", help="pipeline whose datasets to check")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="the Kedro project (default: cwd)")
    args = parser.parse_args(argv)
    data_root = str(Path(args.data_root).resolve())
    bootstrap_project(args.project_dir)
    with KedroSession.create(args.project_dir, env=args.env, runtime_params={"data_root": data_root}) as session:
        catalog = session.load_context().catalog
    pipeline = pipelines[args.pipeline]
    findings = check_data_root(catalog, pipeline)
    bad = [f.dataset for f in findings if f.state in PROBLEMS]
    redo = nodes_to_redo(pipeline, bad)
    command = redo_command(args.env, data_root, args.pipeline, pipeline, redo) if redo else None
    leftovers = sorted(Path(data_root).rglob(".*.tmp"))
    print(report(findings, leftovers, command))
    return 1 if bad else 0


def run() -> None:
    """Console-script wrapper: exit with ``main``'s status."""
    sys.exit(main())
