"""Run many configs through any ``concurrent.futures.Executor``; what the store already holds is not trained again.

The same sweep runs in-process (``SerialExecutor``), on a local process pool (``process_pool``) or on a Dask
cluster (``distributed.Client(...).get_executor()``; ``dask-jobqueue`` for Slurm/PBS) with no code change. A task is
a bundle of runs trained as one program (``bundles``); it loads its data, trains and writes its runs to the store
itself, so the driver holds nothing that an interruption could lose: start the sweep again and only the missing
runs are trained (a killed task loses its own unfinished runs, at most about ``BUNDLE_SECONDS`` of work).
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from . import models, settings, train
from .config import RunConfig
from .data import spec as dataset_spec
from .errors import ConfigError, MinarchError
from .store import Store


SEED_BATCH = 32  # seeds stacked in one program at most (the paper's 30 fit in one)
CPU_STEP_BYTES = 16 * 2**20  # on a CPU, the stacked minibatches of one step stay about this small (cache-sized)
BUNDLE_SECONDS = 300  # a bundle's estimated wall time at most: a killed sweep loses at most about this much
FLOP_RATE = {"cpu": 5e10, "cuda": 5e12}  # FLOP/s a worker is assumed to reach, to estimate a bundle's wall time


@dataclass(frozen=True)
class Limits:
    """How large a bundle may grow: ``memory`` bytes of training state (weights, gradients and optimiser state, a
    minibatch's activations and their gradients; default ``settings.bundle_memory()``) and ``seconds`` of
    estimated wall time. A member that exceeds the memory alone trains alone, and the sweep says so once."""
    memory: int | None = None
    seconds: float = BUNDLE_SECONDS

    def __post_init__(self):
        if self.memory is not None and (isinstance(self.memory, bool) or not isinstance(self.memory, int)
                                        or self.memory < 2**20):
            raise ConfigError(f"bundle memory must be a whole number of bytes >= 1 MiB, got {self.memory!r}")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not self.seconds > 0:
            raise ConfigError(f"bundle seconds must be a number > 0, got {self.seconds!r}")

    @property
    def bytes(self) -> int:
        return self.memory if self.memory is not None else settings.bundle_memory()


def seeds_per_program(cfg: RunConfig, device, architectures: int) -> int:
    """How many seeds a bundle stacks (``train.Stack``). On CUDA all of them (up to ``SEED_BATCH``). On a CPU a
    bundle of several architectures takes one seed (its fused program is large enough: stacking seeds on it ran
    slower than one seed at a time); one architecture's seeds stack where its family's record says it pays
    (``Family.cpu_stacks_seeds``: DNNs and ViTs, not the convolutions), as many as keep one step's stacked input
    within ``CPU_STEP_BYTES`` (beyond it, more seeds ran slower, not faster)."""
    if settings.device(device).type == "cuda":
        return SEED_BATCH
    if architectures > 1 or not models.family(cfg.family).cpu_stacks_seeds:
        return 1
    per_seed = cfg.batch_size * math.prod(dataset_spec(cfg.dataset).input_shape) * 4  # float32 bytes
    return max(1, min(SEED_BATCH, CPU_STEP_BYTES // per_seed))


def footprint(cfg: RunConfig) -> models.Footprint:
    s = dataset_spec(cfg.dataset)
    return models.footprint(cfg.family, json.dumps(cfg.arch, sort_keys=True), s.input_shape, s.n_classes)


def memory(cfg: RunConfig) -> int:
    """Bytes one run takes in a bundle: float32 weights, gradients and two optimiser moments, and a minibatch's
    activations with their gradients."""
    f = footprint(cfg)
    return 16 * f.params + 8 * cfg.batch_size * f.activations


def flops(cfg: RunConfig) -> float:
    """The model arithmetic of training one run: three passes' worth per training image and epoch (forward,
    backward), one per monitored image (the per-epoch history rows) and the final evaluation."""
    s = dataset_spec(cfg.dataset)
    images = (cfg.train_per_class * s.n_classes if cfg.train_per_class else
              (s.official[0] if s.official else 50_000) - cfg.val_per_class * s.n_classes)
    monitor = 3 * train.MONITOR_PER_CLASS * s.n_classes
    return footprint(cfg).flops * ((3 * images + monitor) * cfg.epochs + 2 * images)


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
        data_root=None, limits: Limits = Limits(), fuse: bool = True, progress: bool | None = None) -> pd.DataFrame:
    """Make sure every config has a stored run; return the table of those runs.

    The missing runs are cut into bundles (``bundles``), each trained as one program by one task
    (``train.train_bundle``) and stored as separate runs. Bad input (``MinarchError``: missing data, an unwritable
    store) stops the sweep at once with its own message. Other errors do not: the remaining tasks complete and are
    stored, then ``SweepError`` lists the failures. A run that diverges (NaN/inf loss) is a result, stored with
    status ``diverged``.

    The bundles go out in a fixed shuffled order, and the progress bar counts runs. Its time left prices the
    bundles left by their FLOPs (``flops``) at the rate each family's finished bundles reached (the rate of all
    finished ones for a family not seen yet), over the workers: families train at very different rates (the
    benchmark's utilisation lines: DNNs near the matmul peak, convolutions and transformers far below it), so
    neither runs nor FLOPs alone measure what is left.
    """
    store = store if isinstance(store, Store) else Store(store)
    configs = list({c.run_id: c for c in configs}.values())
    device = str(device) if device is not None else None
    missing = [c for c in configs if store.get(c) is None]
    tasks = bundles(missing, device, limits, fuse)
    random.Random(0).shuffle(tasks)  # a fixed mixed order: the work done is a fair sample of the work left
    executor = executor or SerialExecutor()
    window = 2 * _workers(executor)  # tasks in flight: enough to keep workers busy, few enough to stop promptly
    if progress is None:
        progress = os.environ.get("MINARCH_PROGRESS", "1") != "0"
    bar = tqdm(total=len(configs), initial=len(configs) - len(missing), desc="runs", unit="run", smoothing=0,
               disable=not progress, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}{postfix}]")
    cost = {id(t): sum(map(flops, t)) for t in tasks}
    left = list(tasks)  # not yet finished
    seen: dict[str, list[float]] = {}  # family -> [FLOPs, seconds] of its finished bundles
    bar.set_postfix_str("?")
    todo, failures, pending = iter(tasks), [], {}
    try:
        while True:
            while len(pending) < window and (task := next(todo, None)) is not None:
                args = ([c.to_dict() for c in task], str(store.root), device,
                        None if data_root is None else str(data_root))
                pending[executor.submit(train_and_store, *args)] = task
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                task, err = pending.pop(future), future.exception()
                if isinstance(err, MinarchError):
                    raise err  # bad input (missing data, unwritable store...) would fail every run alike
                if err is not None:
                    failures += [(cfg, err) for cfg in task]
                else:
                    totals = seen.setdefault(task[0].family, [0.0, 0.0])
                    totals[0], totals[1] = totals[0] + cost[id(task)], totals[1] + future.result()[1]
                left.remove(task)
                bar.set_postfix_str(_time_left(left, cost, seen, _workers(executor)), refresh=False)
                bar.update(len(task))
    finally:
        for future in pending:
            future.cancel()
        bar.close()
    if failures:
        lines = "\n".join(f"  {c.run_id} {c.family} {c.arch} seed {c.seed}: {e!r}" for c, e in failures)
        raise SweepError(f"{len(failures)} of {len(configs)} runs failed (the rest are stored):\n{lines}")
    return store.table(configs=configs)


def _time_left(left: list, cost: dict, seen: dict, workers: int) -> str:
    """The bundles ``left`` priced at their families' rates so far (``run``), over the workers."""
    if not any(s for _, s in seen.values()):
        return "?"
    overall = sum(f for f, _ in seen.values()) / sum(s for _, s in seen.values())
    rate = {fam: f / s if s else overall for fam, (f, s) in seen.items()}
    return _clock(sum(cost[id(t)] / rate.get(t[0].family, overall) for t in left) / workers)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} left" if hours else f"{minutes:02d}:{secs:02d} left"


def bundles(configs: list[RunConfig], device=None, limits: Limits = Limits(), fuse: bool = True,
            warn=lambda text: print(text, file=sys.stderr)) -> list[list[RunConfig]]:
    """The configs cut into bundles (``train.train_bundle``): configs that share every setting of the training
    loop, their family and a set of seeds (``rectangles``), ``seeds_per_program`` seeds at a time, and as many
    architectures as fit ``limits``: several only where the family has a fused form, that form pays on the device
    (``Family.cpu_fuses``: on a CPU fused CNNs ran no faster than one at a time, bound by memory traffic)
    and ``fuse`` (``fuse=False`` trains one architecture at a time: the benchmark's baseline)."""
    out, alone = [], []
    budget = limits.seconds * FLOP_RATE[settings.device(device).type]  # FLOPs
    for rect in rectangles(configs):
        archs = list(dict.fromkeys(train.arch_key(c) for c in rect))
        seeds = list(dict.fromkeys(c.seed for c in rect))
        cell = {(train.arch_key(c), c.seed): c for c in rect}
        family = models.family(rect[0].family)
        fusable = fuse and family.fused is not None and (family.cpu_fuses or settings.device(device).type == "cuda")
        n = seeds_per_program(rect[0], device, len(archs) if fusable else 1)
        n = max(1, min(n, limits.bytes // max(memory(cell[a, seeds[0]]) for a in archs)))  # seeds within memory
        costs = [(memory(cell[a, seeds[0]]) * min(n, len(seeds)), flops(cell[a, seeds[0]]) * min(n, len(seeds)))
                 for a in archs]
        alone += [cell[a, seeds[0]] for a, (m, _) in zip(archs, costs) if m > limits.bytes]
        # as few bundles as the limits allow, about equal in cost
        parts = max(1, math.ceil(sum(m for m, _ in costs) / limits.bytes), math.ceil(sum(f for _, f in costs) / budget))
        even = (sum(m for m, _ in costs) / parts, sum(f for _, f in costs) / parts)
        groups, used = [[]], (0, 0.0)  # architectures per bundle; the last one's bytes and FLOPs
        for a, (m, f) in zip(archs, costs):
            if groups[-1] and (not fusable or used[0] + m > limits.bytes or used[1] + f > budget
                               or used[0] >= even[0] or used[1] >= even[1]):
                groups.append([])
                used = (0, 0.0)
            groups[-1].append(a)
            used = (used[0] + m, used[1] + f)
        for i in range(0, len(seeds), n):
            out += [[cell[a, s] for s in seeds[i:i + n] for a in group] for group in groups]
    if alone:
        warn(f"{len(alone)} configuration(s) need more than the bundle memory of {limits.bytes / 2**30:.2f} GiB even "
             f"alone and train alone, e.g. {alone[0].family} {alone[0].arch} ({memory(alone[0]) / 2**30:.2f} GiB); "
             "raise MINARCH_BUNDLE_MEMORY (or --bundle-memory) if this machine can hold them")
    return out


def rectangles(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """The configs grouped by family and every setting of the training loop, then by the set of seeds each
    architecture has among them: each group holds every one of its architectures with every one of its seeds (a
    sweep that was interrupted leaves some seeds of some architectures stored)."""
    loops: dict[str, dict[str, list[RunConfig]]] = {}
    for cfg in configs:
        key = json.dumps({k: v for k, v in cfg.to_dict().items() if k not in ("arch", "seed")}, sort_keys=True)
        loops.setdefault(key, {}).setdefault(train.arch_key(cfg), []).append(cfg)
    out = []
    for by_arch in loops.values():
        by_seeds: dict[tuple, list[RunConfig]] = {}
        for cfgs in by_arch.values():
            by_seeds.setdefault(tuple(sorted(c.seed for c in cfgs)), []).extend(sorted(cfgs, key=lambda c: c.seed))
        out += list(by_seeds.values())
    return out


def train_and_store(cfgs: list[dict], store_root: str, device: str | None = None, data_root: str | None = None):
    """One task of a sweep, self-contained so that any executor can ship it: train the bundle's runs not yet
    stored (another worker may have stored some: what is left is trained as the bundles it still forms). Returns
    the run ids and the seconds it took."""
    start = time.perf_counter()
    settings.keep_freed_memory()  # this process trains: its activations' buffers are reused, not mapped afresh
    store = Store(store_root)
    cfgs = [c for c in map(RunConfig.from_dict, cfgs) if store.get(c) is None]
    if cfgs:
        dev = settings.device(device)
        dataset = train.load_data(cfgs[0], dev, data_root)
        for bundle in rectangles(cfgs):
            for cfg, result in zip(bundle, train.train_bundle(bundle, dataset, dev)):
                store.put(cfg, result, device=str(dev))
    return [c.run_id for c in cfgs], time.perf_counter() - start


def in_words(table: pd.DataFrame, profile, title: str) -> str:
    """What a sweep of ``profile`` trained on the dataset ``title``, in a sentence (the sweep chapter's first)."""
    return (f"The `{profile.name}` profile trains **{len(table):,} runs** on **{title}**: {profile.in_words()}; "
            f"{table.config_id.nunique()} configurations from {table.n_params.min():,} to "
            f"{table.n_params.max():,} learnable parameters; {int((table.status == 'diverged').sum())} runs diverged.")


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
