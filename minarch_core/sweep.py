"""Run many configs through any ``concurrent.futures.Executor``; what the store already holds is not trained again.

The same sweep runs in-process (``SerialExecutor``), on a local process pool (``process_pool``) or on a Dask
cluster (``distributed.Client(...).get_executor()``; ``dask-jobqueue`` for Slurm/PBS) with no code change. Each task
loads its data, trains and writes its run to the store itself, so the driver holds nothing that an interruption
could lose: start the sweep again and only the missing runs are trained.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait

import pandas as pd
import torch
from tqdm import tqdm

from . import settings, train
from .config import RunConfig
from .errors import MinarchError
from .store import Store


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
        data_root=None, progress: bool | None = None) -> pd.DataFrame:
    """Make sure every config has a stored run; return the table of those runs.

    Bad input (``MinarchError``: missing data, an unwritable store) stops the sweep at once with its own message.
    Other errors do not: the remaining runs complete and are stored, then ``SweepError`` lists the failures. A run
    that diverges (NaN/inf loss) is a result, stored with status ``diverged``.
    """
    store = store if isinstance(store, Store) else Store(store)
    configs = list({c.run_id: c for c in configs}.values())
    missing = [c for c in configs if store.get(c) is None]
    executor = executor or SerialExecutor()
    window = 2 * _workers(executor)  # tasks in flight: enough to keep workers busy, few enough to stop promptly
    device = str(device) if device is not None else None
    if progress is None:
        progress = os.environ.get("MINARCH_PROGRESS", "1") != "0"
    bar = tqdm(total=len(configs), initial=len(configs) - len(missing), desc="runs", unit="run", disable=not progress)
    todo, failures, pending = iter(missing), [], {}
    try:
        while True:
            while len(pending) < window and (cfg := next(todo, None)) is not None:
                args = (cfg.to_dict(), str(store.root), device, None if data_root is None else str(data_root))
                pending[executor.submit(train_and_store, *args)] = cfg
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                cfg, err = pending.pop(future), future.exception()
                if isinstance(err, MinarchError):
                    raise err  # bad input (missing data, unwritable store...) would fail every run alike
                if err is not None:
                    failures.append((cfg, err))
                bar.update()
    finally:
        for future in pending:
            future.cancel()
        bar.close()
    if failures:
        lines = "\n".join(f"  {c.run_id} {c.family} {c.arch} seed {c.seed}: {e!r}" for c, e in failures)
        raise SweepError(f"{len(failures)} of {len(configs)} runs failed (the rest are stored):\n{lines}")
    return store.table(configs=configs)


def train_and_store(cfg: dict, store_root: str, device: str | None = None, data_root: str | None = None) -> str:
    """One task of a sweep, self-contained so that any executor can ship it: train ``cfg`` unless stored."""
    cfg, store = RunConfig.from_dict(cfg), Store(store_root)
    if store.get(cfg) is None:  # another worker may have stored it since the sweep looked
        dev = settings.device(device)
        result = train.train(cfg, train.load_data(cfg, dev, data_root), dev)
        store.put(cfg, result, device=str(dev))
    return cfg.run_id


def overview(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (seeds pooled): parameters, seeds, test accuracy mean/std/min/max, divergences."""
    if table.empty:
        return table
    keys = [k for k in ("dataset", "family", "depth", "width", "widths", "channels", "dim") if k in table]
    grouped = table.groupby(keys, dropna=False, sort=True)
    out = grouped.agg(params=("n_params", "first"), seeds=("seed", "count"),
                      train_acc=("train_acc", "mean"), test_acc=("test_acc", "mean"),
                      test_std=("test_acc", "std"), test_min=("test_acc", "min"), test_max=("test_acc", "max"),
                      diverged=("status", lambda s: int((s == "diverged").sum())))
    return out.reset_index().dropna(axis=1, how="all").sort_values(["family", "depth", "params"], ignore_index=True)


def _workers(executor: Executor) -> int:
    if hasattr(executor, "_client"):  # distributed's ClientExecutor
        return max(1, sum(executor._client.nthreads().values()))
    return getattr(executor, "_max_workers", None) or os.cpu_count() or 1
