"""Where pages run: our own process pool (``local``) or a Dask cluster (``dask``, ``dask-local``).

Both give the scheduler the same interface (that of :class:`engine.pool.WorkerPool`): slots that
hold tasks, ``send``, ``wait`` for answers, deadlines and deaths. Timeouts, retries, circuit
breakers and the ledger stay in the parent whatever the executor.
"""

from __future__ import annotations

from typing import Any

from engine.config import EngineConfig


def make_pool(config: EngineConfig, plugin_specs: list[Any]) -> Any:
    _, high = config.worker_bounds()
    if config.executor == "local":
        from engine.pool import WorkerPool

        return WorkerPool(plugin_specs, config, high, config.mp_context)
    from engine.executors.dask import DaskPool

    return DaskPool(plugin_specs, config)
