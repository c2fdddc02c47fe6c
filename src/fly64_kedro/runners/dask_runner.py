"""``DaskRunner``: run independent Kedro nodes concurrently on a dask.distributed cluster.

    kedro run --runner=fly64_kedro.runners.DaskRunner                                   # LocalCluster, 2 workers
    kedro run --runner=fly64_kedro.runners.DaskRunner --runner-params=n_workers=4
    kedro run --runner=fly64_kedro.runners.DaskRunner --runner-params=address=tcp://scheduler:8786

Each node runs as one task on a worker process, which loads its inputs from and saves its outputs to the
catalog's persisted datasets, so every dataset crossing nodes must be persisted (checked before the run).
Workers are started non-daemonic so a node may still spawn its engine worker (torch / TensorFlow).
See README ("Beyond one machine") for a SLURM cluster with dask-jobqueue.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import Any

import dask
from distributed import Client, LocalCluster
from kedro.io import MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import AbstractRunner
from kedro.runner.task import Task


def _run_task(task: Task, package_name: str) -> None:
    """Executed on a Dask worker: configure the Kedro project there once, then run the node with its hooks."""
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks, _register_hooks_entry_points
    from kedro.framework.project import PACKAGE_NAME, configure_project, settings

    if PACKAGE_NAME != package_name:
        configure_project(package_name)
    hook_manager = _create_hook_manager()
    _register_hooks(hook_manager, settings.HOOKS)
    _register_hooks_entry_points(hook_manager, settings.DISABLE_HOOKS_FOR_PLUGINS)
    task.hook_manager = hook_manager
    task.execute()  # the node itself is not sent back: the runner already holds it


class _TaskExecutor(Executor):
    """Submits Kedro ``Task`` objects to a Dask client as ``concurrent.futures`` futures."""

    def __init__(self, client: Client):
        from kedro.framework.project import PACKAGE_NAME

        self._client = client
        self._package = PACKAGE_NAME

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        dask_future = self._client.submit(_run_task, fn, self._package, pure=False)
        future: Future = Future()

        def relay(done: Any) -> None:
            try:
                done.result()
                future.set_result(fn.node)
            except BaseException as exc:  # noqa: BLE001 - handed to the runner, which raises it
                future.set_exception(exc)

        dask_future.add_done_callback(relay)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The client outlives one run's executor; the runner closes it."""


class DaskRunner(AbstractRunner):
    """Kedro runner on dask.distributed: a scheduler ``address``, or a LocalCluster of ``n_workers`` processes."""

    def __init__(
        self,
        address: str | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        is_async: bool = False,
    ):
        super().__init__(is_async=is_async)
        self._address = address
        self._n_workers = int(n_workers)
        self._threads = int(threads_per_worker)

    def _client(self) -> tuple[Client, LocalCluster | None]:
        if self._address:
            return Client(self._address), None
        with dask.config.set({"distributed.worker.daemon": False}):
            cluster = LocalCluster(
                n_workers=self._n_workers, threads_per_worker=self._threads, processes=True, dashboard_address=None
            )
        return Client(cluster), cluster

    def _get_executor(self, max_workers: int) -> Executor:
        return _TaskExecutor(self._active_client)

    def _get_required_workers_count(self, pipeline: Pipeline) -> int:
        return self._n_workers

    def _validate_catalog(self, catalog: Any) -> None:
        """Every dataset a node writes must be persisted: a MemoryDataset would stay on the worker that wrote it."""
        in_memory = [
            name
            for name in self._outputs
            if not name.startswith("params:")
            and isinstance(catalog.get(name, fallback_to_runtime_pattern=True), MemoryDataset)
        ]
        if in_memory:
            raise ValueError(f"DaskRunner needs every node output persisted; in memory: {sorted(in_memory)}")

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        self._outputs = pipeline.all_outputs()
        client, cluster = self._client()
        self._active_client = client
        try:
            self._logger.info("DaskRunner on %s", client.dashboard_link or client.scheduler.address)
            super()._run(pipeline=pipeline, catalog=catalog, run_id=run_id)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
