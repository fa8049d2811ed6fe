"""Where units of work run: this process, local worker processes, or a Ray cluster.

Every backend has the same small interface: ``slots`` (units in flight at once),
``submit(unit, cache) -> Future[UnitResult]``, ``recover()`` after a worker died,
``replace_workers()`` after a CUDA error spoiled one, ``worker_cache(cache)`` (the folder its
workers keep checkpoints in), ``after_each_run(store)`` and ``close()``; ``_Backend`` has the defaults. The driver (``dcbench.runner.executor``) does the rest, so a new backend is one class.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from dcbench.core.errors import UsageError
from dcbench.datasets import ImageDataset
from dcbench.runner.pretrain_cache import PretrainCache
from dcbench.runner.work import Unit, UnitResult, run_unit

EXECUTORS = ("local", "ray")


class _Backend:
    slots = 1

    def worker_cache(self, cache: PretrainCache) -> PretrainCache | None:
        """The folder where this backend's workers keep checkpoints (and finished runs) for
        the driver's ``cache``: the same folder, unless the workers have their own."""
        return cache

    def after_each_run(self, store_finished: Callable[[Unit], None] | None) -> None:
        """The driver's way to store a unit's finished runs (None: no longer). A backend whose
        units run in the driver's own process calls it as each run ends (the driver cannot
        look while the unit runs); the others ignore it: the driver looks at their folder
        every minute."""

    def recover(self) -> None:
        """Called after a worker died; the default has nothing to repair."""

    def replace_workers(self) -> None:
        """Called after a unit failed with a CUDA error, which may leave its process's CUDA
        context unusable: later units must run in fresh processes. The default (this process,
        or Ray, whose GPU tasks get a fresh worker process each: ``max_calls=1``) has none to
        replace."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(_Backend):
    """Runs each unit here, in order (the default): pretraining checkpoints go straight to the
    output folder's cache, and Ctrl-C stops at once."""

    def __init__(self, data: dict[str, ImageDataset], device: str, threads: int = 1):
        self.data, self.device, self.threads = data, str(device), threads
        self._store_finished: Callable[[Unit], None] | None = None

    def after_each_run(self, store_finished: Callable[[Unit], None] | None) -> None:
        self._store_finished = store_finished

    def submit(self, unit: Unit, cache: PretrainCache) -> Future:
        future: Future = Future()
        before = torch.get_num_threads()
        store = self._store_finished
        try:
            future.set_result(
                run_unit(
                    unit,
                    self.data[unit.dataset],
                    self.device,
                    cache.directory,
                    threads=self.threads,
                    after_each_run=(lambda: store(unit)) if store else None,
                )  # fmt: skip
            )
        finally:
            torch.set_num_threads(before)  # leave the caller's setting as it was
        return future


# -- local processes -------------------------------------------------------------------------

_WORKER_DATA: dict[str, ImageDataset] = {}


def _init_worker(data: dict[str, ImageDataset], threads: int) -> None:
    _WORKER_DATA.update(data)  # sent once per worker, not once per unit
    torch.set_num_threads(threads)


def _run_in_worker(unit: Unit, device: str, checkpoint_dir: str) -> UnitResult:
    return run_unit(unit, _WORKER_DATA[unit.dataset], device, checkpoint_dir)


class LocalProcesses(_Backend):
    """``--jobs N`` worker processes of ``threads`` threads each (on 2 cores, two
    single-thread workers beat one two-thread process). They share the machine's disk, so
    pretraining checkpoints go straight to the output folder's cache."""

    def __init__(self, data: dict[str, ImageDataset], device: str, jobs: int, threads: int = 1):
        self.data, self.device, self.slots, self.threads = data, str(device), jobs, threads
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.slots,
            mp_context=multiprocessing.get_context("spawn"),  # torch is not fork-safe
            initializer=_init_worker,
            initargs=(self.data, self.threads),
        )

    def submit(self, unit: Unit, cache: PretrainCache) -> Future:
        return self._pool.submit(_run_in_worker, unit, self.device, str(cache.directory))

    def recover(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()

    def replace_workers(self) -> None:
        """New units go to fresh processes; the old ones finish the units they hold (their
        futures stay valid), then exit."""
        old, self._pool = self._pool, self._start()
        old.shutdown(wait=False, cancel_futures=False)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- Ray ----------------------------------------------------------------------------------------


def _run_on_ray(unit, data, device, checkpoint_dir, pretrained, threads) -> UnitResult:
    return run_unit(unit, data, device, checkpoint_dir, pretrained=pretrained, threads=threads)


class RayExecutor(_Backend):
    """Units as Ray tasks (``threads`` CPUs each, plus ``gpus_per_run`` of a GPU for CUDA runs:
    a fraction lets several units share one device), on a cluster joined at
    ``address`` or started here. The datasets go to the object store once; a cached
    pretrained state travels with its unit and a new one comes back with the result, so
    workers need no shared disk. ``shared_dir`` (optional) is a folder every worker can
    write, for pretraining checkpoints that survive a lost worker."""

    def __init__(
        self,
        data: dict[str, ImageDataset],
        device: str,
        address: str | None = None,
        shared_dir: str | None = None,
        max_retries: int = 2,
        threads: int = 1,
        gpus_per_run: float = 1.0,
    ):
        if not 0 < gpus_per_run <= 1:
            raise UsageError(
                f"--gpus-per-run {gpus_per_run} is not allowed; give a share in (0, 1]"
            )
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--executor ray needs Ray: pip install 'dcbench[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            if address is None:
                # Ray runs task workers at nice 15: on a machine doing anything else they get
                # a sliver of the CPU (20x slower measured here beside two busy processes).
                # A local cluster we start runs them at normal priority (override: set it).
                os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        self.device, self.shared_dir, self.threads = str(device), shared_dir, threads
        gpus = gpus_per_run if torch.device(device).type == "cuda" else 0
        per_task = gpus or threads
        free = ray.cluster_resources().get("GPU" if gpus else "CPU", 1)
        self.slots = max(1, math.floor(free / per_task + 1e-9))
        self._refs = {name: ray.put(ds) for name, ds in data.items()}
        # a crashed worker process is retried; an exception inside a run is already recorded
        self._task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=max_retries)(
            _run_on_ray
        )

    def worker_cache(self, cache: PretrainCache) -> PretrainCache | None:
        """The shared folder (or none: each task's scratch folder goes with it)."""
        return PretrainCache(self.shared_dir) if self.shared_dir else None

    def submit(self, unit: Unit, cache: PretrainCache) -> Future:
        if hasattr(unit, "units"):  # stacked: each seed's cached state
            pretrained: Any = [cache.load(u.pretrain_key) for u in unit.units]
        else:
            pretrained = cache.load(unit.pretrain_key) if unit.pretrain_key else None
        ref = self._task.remote(
            unit, self._refs[unit.dataset], self.device, self.shared_dir, pretrained, self.threads
        )
        return ref.future()

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()


def make_backend(
    name: str,
    data: dict[str, ImageDataset],
    device: str,
    jobs: int = 1,
    threads: int = 1,
    ray_address: str | None = None,
    shared_dir: str | None = None,
    gpus_per_run: float = 1.0,
) -> _Backend:
    if name == "local":
        if jobs == 1:
            return InProcess(data, device, threads)
        return LocalProcesses(data, device, jobs, threads)
    if name == "ray":
        return RayExecutor(
            data, device, ray_address, shared_dir, threads=threads, gpus_per_run=gpus_per_run
        )
    raise UsageError(f"--executor '{name}' is not known; choose from: {', '.join(EXECUTORS)}")
