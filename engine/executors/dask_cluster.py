"""The Dask cluster behind :class:`engine.executors.dask.DaskPool`: its address, its size, and
what reaches its workers.

- :func:`check_scheduler_address`: a malformed address is a usage error at once.
- :func:`shippable_specs`: plugin objects pickled with cloudpickle, so a class defined in the host
  script travels by value (a Dask worker's ``__main__`` is not the host's).
- :class:`LocalScaler` (``dask-local``): the ``LocalCluster`` follows pagemill's slots, one
  single-threaded worker each; it grows at once and shrinks by retiring idle workers only.
- :class:`ClusterThreads` and :class:`ClusterProbe` (an existing cluster): ``--workers auto``
  means 1 to the cluster's total threads, looked up again as workers join and leave, and the
  parent's CPU and memory do not limit it.
"""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import replace
from typing import Any

from loguru import logger

from engine.errors import ConfigError

DEFAULT_PORT = 8786
CAPACITY_EVERY = 2.0  # seconds between two looks at an existing cluster's threads
MIN_CLUSTER_SLOTS = 256  # slots an existing cluster can grow to under --workers auto (more if it starts bigger)
# the dask-local cluster: single-threaded worker processes under nannies (a stuck one can be restarted)
LOCAL_CLUSTER_OPTIONS: dict[str, Any] = {"threads_per_worker": 1, "processes": True, "dashboard_address": None}


def check_scheduler_address(address: str) -> None:
    """A malformed address is a usage error, told at once rather than after a connection timeout."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown protocol {scheme!r} (use one of {', '.join(sorted(backends))})")
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(location, DEFAULT_PORT)
            if not host or not 0 < int(port) < 65536:
                raise ValueError("expected HOST:PORT")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad dask scheduler address {address!r}: {exc}; expected tcp://HOST:{DEFAULT_PORT}") from None


class ClusterProbe:
    """What the scaling policy reads when pages run on an existing cluster: the parent's CPU and
    memory say nothing about the Dask workers', so they never hold growth back (cores unknown,
    CPU 0 %, no memory limit); Dask workers keep to their own ``memory_limit``."""

    cpu_count = 0

    def sample(self) -> tuple[float, float]:
        return 0.0, math.inf


def shippable_specs(specs: list[Any]) -> list[Any]:
    """The plugin specs with every plugin object pickled again with cloudpickle: a class defined
    in the host script (``__main__``) travels by value, since a Dask worker's ``__main__`` is not
    the host's; an importable one still travels by reference."""
    import cloudpickle

    shipped = []
    for spec in specs:
        if spec.kind == "object":
            try:
                payload = cloudpickle.dumps(pickle.loads(spec.payload))
            except Exception as exc:  # noqa: BLE001 - any failure is the plugin's, named
                raise ConfigError(f"plugin {spec.name} cannot be sent to Dask workers ({type(exc).__name__}: {exc}); "
                                  f"move its class into an importable module, or pass a plugin file") from None
            spec = replace(spec, payload=payload)
        shipped.append(spec)
    return shipped


class ClusterThreads:
    """An existing cluster's total threads: looked up once at start (waiting for the answer),
    then every CAPACITY_EVERY seconds in the client's event loop (not waiting)."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address
        self.count = int(client.scheduler_info(n_workers=0).get("total_threads") or 0)
        self.capacity = max(MIN_CLUSTER_SLOTS, self.count)  # the most slots a run can use at once
        self._next = time.monotonic() + CAPACITY_EVERY
        logger.info("dask cluster at {}: {} threads; --workers auto uses 1 to that many slots", address, self.count)

    def look_up(self) -> None:
        """Ask again when CAPACITY_EVERY has passed; ``count`` changes when the answer comes."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + CAPACITY_EVERY
        try:
            self.client.loop.add_callback(self._ask)
        except Exception as exc:  # noqa: BLE001 - a closed client: the pool says the cluster is lost
            logger.debug("dask capacity: {}", exc)

    async def _ask(self) -> None:
        try:
            info = await self.client.scheduler.identity(n_workers=0)
        except Exception as exc:  # noqa: BLE001 - the next look tries again; a lost cluster is the pool's to say
            logger.debug("dask capacity: {}", exc)
            return
        threads = int(info.get("total_threads") or 0)
        if threads != self.count:
            logger.info("dask cluster at {}: {} threads (was {}){}", self.address, threads, self.count,
                        f"; at most {self.capacity} slots are used" if threads > self.capacity else "")
        self.count = threads


class LocalScaler:
    """Keeps a ``LocalCluster`` at the number of workers the slots want."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._leaving: set[Any] = set()  # names of the workers asked to retire, until they are gone

    def scale(self, wanted: int, busy: set[str]) -> None:
        """``wanted`` workers: more are started at once (not waited for); fewer by retiring
        workers whose address is not in ``busy`` (those running a page of ours), newest first."""
        cluster = self.cluster
        self._leaving &= set(cluster.worker_spec)
        have = len(cluster.worker_spec) - len(self._leaving)
        if wanted > have:
            cluster.scale(wanted + len(self._leaving))
            return
        if wanted == have:
            return
        try:
            members = list(cluster.workers.items())
        except RuntimeError:  # changing in the cluster's thread right now: at the next check
            return
        idle = [name for name, member in members
                if name in cluster.worker_spec and name not in self._leaving
                and (getattr(member, "worker_address", None) or getattr(member, "address", None)) not in busy]
        chosen = idle[len(idle) - min(len(idle), have - wanted):]
        if chosen:
            self._leaving.update(chosen)
            cluster.loop.add_callback(cluster.scale_down, chosen)


__all__ = ["CAPACITY_EVERY", "LOCAL_CLUSTER_OPTIONS", "MIN_CLUSTER_SLOTS", "ClusterProbe", "ClusterThreads",
           "LocalScaler", "check_scheduler_address", "shippable_specs"]
