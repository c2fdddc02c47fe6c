"""Project CLI: ``kedro run`` is Kedro's own command with one change, its default runner is
``fly64_kedro.runners.EngineRunner`` (two jobs at a time; docs/operations.md). ``--runner`` still picks any other.
Kedro loads this module's ``cli`` group and lets its commands replace the built-in ones of the same name."""

from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as kedro_run

DEFAULT_RUNNER = "fly64_kedro.runners.EngineRunner"


def with_default_runner(command: click.Command, runner: str) -> click.Command:
    """A copy of ``command`` whose --runner option defaults to ``runner``."""
    patched = copy.copy(command)
    patched.params = [copy.copy(param) for param in command.params]
    for param in patched.params:
        if param.name == "runner":
            param.default = runner
            param.help = f"{param.help} Default here: {runner}."
    return patched


@click.group(name="fly64-kedro")
def cli() -> None:
    """fly64-kedro project commands."""


cli.add_command(with_default_runner(kedro_run, DEFAULT_RUNNER), name="run")
