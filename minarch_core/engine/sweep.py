"""Run many configs through any ``concurrent.futures.Executor``; what the store already holds is not trained again.

The same sweep runs in-process (``SerialExecutor``), on a local process pool (``process_pool``) or on a Dask
cluster (``distributed.Client(...).get_executor()``; ``dask-jobqueue`` for Slurm/PBS) with no code change. Each task
loads its data, trains and writes its run to the store itself, so the driver holds nothing that an interruption
could lose: start the sweep again and only the missing runs are trained.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import random
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait

import pandas as pd
import torch
from tqdm import tqdm

from . import models, settings, train
from .config import RunConfig
from .data import spec as dataset_spec
from .errors import ConfigError, MinarchError
from .store import Store


SEED_BATCH = 32  # seeds trained together in one task at most (the paper's 30 fit in one)
CPU_STEP_BYTES = 16 * 2**20  # on a CPU, the stacked minibatches of one step stay about this small (cache-sized)


def seed_batch_for(cfg: RunConfig, device) -> int:
    """How many seeds of ``cfg``'s configuration to stack per task. All of them on CUDA. On a CPU only DNNs, and only
    as many as keep one step's stacked input within ``CPU_STEP_BYTES``: benchmarks/speed.py measures stacking
    up to 6x faster there, but slower for convolutions and attention (``Family.cpu_stacks_seeds``), and slower
    again once the stacked minibatches outgrow the cache (30 CIFAR-10 seeds ran 1.5x slower than 10)."""
    if settings.device(device).type == "cuda":
        return SEED_BATCH
    if not models.family(cfg.family).cpu_stacks_seeds:
        return 1
    per_seed = cfg.batch_size * math.prod(dataset_spec(cfg.dataset).input_shape) * 4  # float32 bytes
    return max(1, min(SEED_BATCH, CPU_STEP_BYTES // per_seed))


class SweepError(MinarchError):
    """Some runs raised an error (not a divergence, which is a result); every other run was completed and stored."""


class SerialExecutor(Executor):
    """Runs each task in this process when it is submitted: the simplest executor, and the easiest to debug."""
    _max_workers = 1

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001  (delivered through the future, as any executor does)
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future


def process_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A local pool whose workers split the machine's cores between them, so torch threads never oversubscribe."""
    cores = os.cpu_count() or 1
    workers = workers or cores
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(max(1, cores // workers),))


def run(configs, store: Store | str | os.PathLike | None = None, *, executor: Executor | None = None, device=None,
        data_root=None, seed_batch: int | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Make sure every config has a stored run; return the table of those runs.

    The missing runs of one configuration are trained together (``train.train_seeds``), up to ``seed_batch`` seeds
    per task (default: ``seed_batch_for`` the configuration and device); each is stored as its own run. Bad input
    (``MinarchError``: missing data, an unwritable store) stops the sweep at once with its own message. Other errors
    do not: the remaining tasks complete and are stored, then ``SweepError`` lists the failures. A run that diverges
    (NaN/inf loss) is a result, stored with status ``diverged``.

    The tasks go out in a fixed shuffled order, and the progress bar's time left is the average rate since the start
    times the runs left: in the profile's order (dataset by dataset, cheap DNNs before CNNs and ViTs) no rate read
    from the runs done so far holds for the rest; mixed, the runs done are a fair sample of those left (measured on
    the quick book in commit 237c0be's message).
    """
    store = store if isinstance(store, Store) else Store(store)
    configs = list({c.run_id: c for c in configs}.values())
    device = str(device) if device is not None else None
    missing = [c for c in configs if store.get(c) is None]
    batches = seed_batches(missing, seed_batch if seed_batch is not None else lambda cfg: seed_batch_for(cfg, device))
    random.Random(0).shuffle(batches)  # a fixed mixed order, for the time left (above)
    executor = executor or SerialExecutor()
    window = 2 * _workers(executor)  # tasks in flight: enough to keep workers busy, few enough to stop promptly
    if progress is None:
        progress = os.environ.get("MINARCH_PROGRESS", "1") != "0"
    bar = tqdm(total=len(configs), initial=len(configs) - sum(map(len, batches)), desc="runs", unit="run",
               smoothing=0, disable=not progress)
    todo, failures, pending = iter(batches), [], {}
    try:
        while True:
            while len(pending) < window and (batch := next(todo, None)) is not None:
                args = ([c.to_dict() for c in batch], str(store.root), device,
                        None if data_root is None else str(data_root))
                pending[executor.submit(train_and_store, *args)] = batch
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                batch, err = pending.pop(future), future.exception()
                if isinstance(err, MinarchError):
                    raise err  # bad input (missing data, unwritable store...) would fail every run alike
                if err is not None:
                    failures += [(cfg, err) for cfg in batch]
                bar.update(len(batch))
    finally:
        for future in pending:
            future.cancel()
        bar.close()
    if failures:
        lines = "\n".join(f"  {c.run_id} {c.family} {c.arch} seed {c.seed}: {e!r}" for c, e in failures)
        raise SweepError(f"{len(failures)} of {len(configs)} runs failed (the rest are stored):\n{lines}")
    return store.table(configs=configs)


def seed_batches(configs: list[RunConfig], size) -> list[list[RunConfig]]:
    """The configs grouped by everything but their seed, in order of first appearance, and cut into batches of at
    most ``size`` seeds (a number, or a function of the group's first config)."""
    groups: dict[str, list[RunConfig]] = {}
    for cfg in configs:
        groups.setdefault(cfg.replace(seed=0).run_id, []).append(cfg)
    batches = []
    for group in groups.values():
        n = size(group[0]) if callable(size) else size
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"seed_batch must be an integer >= 1, got {n!r}")
        batches += [group[i:i + n] for i in range(0, len(group), n)]
    return batches


def train_and_store(cfgs: list[dict], store_root: str, device: str | None = None, data_root: str | None = None):
    """One task of a sweep, self-contained so that any executor can ship it: train the seeds not yet stored."""
    store = Store(store_root)
    cfgs = [c for c in map(RunConfig.from_dict, cfgs) if store.get(c) is None]  # another worker may have stored some
    if cfgs:
        dev = settings.device(device)
        results = train.train_seeds(cfgs, train.load_data(cfgs[0], dev, data_root), dev)
        for cfg, result in zip(cfgs, results):
            store.put(cfg, result, device=str(dev))
    return [c.run_id for c in cfgs]


def overview(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (seeds pooled): parameters, seeds, test accuracy mean/std/min/max, divergences."""
    if table.empty:
        return table
    keys = ["dataset", "config_id"]
    grouped = table.groupby(keys, sort=True)
    arch = [k for k in models.arch_columns() if k in table and k != "n_params"]
    out = grouped.agg(**{k: (k, "first") for k in arch}, params=("n_params", "first"), seeds=("seed", "count"),
                      train_acc=("train_acc", "mean"), test_acc=("test_acc", "mean"),
                      test_std=("test_acc", "std"), test_min=("test_acc", "min"), test_max=("test_acc", "max"),
                      diverged=("status", lambda s: int((s == "diverged").sum())))
    out = out.reset_index().drop(columns="config_id").dropna(axis=1, how="all")
    return out.sort_values(["family", "depth", "params"], ignore_index=True)


def _workers(executor: Executor) -> int:
    if hasattr(executor, "_client"):  # distributed's ClientExecutor
        return max(1, sum(executor._client.nthreads().values()))
    return getattr(executor, "_max_workers", None) or os.cpu_count() or 1
