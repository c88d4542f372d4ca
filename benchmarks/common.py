"""What the benchmarks compute alike: exact model FLOPs per image, the cost model fitted to measured times, and the
frontier's chosen runs on a built store."""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from minarch_core.engine import data, models, train


@functools.cache
def _per_image(dataset: str, family: str, arch: str) -> tuple[float, float]:
    shape = data.spec(dataset).input_shape
    model = models.build(family, json.loads(arch), shape, data.spec(dataset).n_classes)
    x, y = torch.zeros(64, *shape), torch.zeros(64, dtype=torch.long)
    with FlopCounterMode(display=False) as step:
        F.cross_entropy(model(x), y).backward()
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        model(x)
    return step.get_total_flops() / 64, forward.get_total_flops() / 64


def per_image(dataset: str, family: str, arch: dict) -> tuple[float, float]:
    """(training-step FLOPs, forward FLOPs) per image of one model, counted exactly by torch.utils.flop_counter."""
    return _per_image(dataset, family, json.dumps(arch, sort_keys=True))


def fit(flops, seconds) -> tuple[float, float]:
    """(a, b) of seconds = a + b * flops, least squares in relative error; where the free fit's a would be
    negative, b is fitted again with a = 0."""
    f, t = np.asarray(flops, dtype=float), np.asarray(seconds, dtype=float)
    a, b = np.linalg.lstsq(np.stack([1 / t, f / t], 1), np.ones_like(t), rcond=None)[0]
    if a < 0:
        a, b = 0.0, float(np.sum(f / t) / np.sum((f / t) ** 2))
    return float(a), max(float(b), 0.0)


def matmul_peak(device="cpu", dtype=torch.float32, n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of a large square matrix product on ``device``: the ceiling the benchmarks measure against (4096 on a
    CPU, 8192 on CUDA, after warm-up; the device synchronised before the clock is read)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 4096)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


class Peak:
    """The matmul peak read again before each section of a benchmark, the largest reading kept: a VM's speed drifts
    within one run, and a ceiling read while it was slow would put later work above 100 % of it."""

    def __init__(self, device="cpu"):
        self.device, self.readings = device, []

    def read(self) -> float:
        """A new reading; returns the largest so far."""
        self.readings.append(matmul_peak(self.device))
        return self.value

    @property
    def value(self) -> float:
        return max(self.readings)

    def text(self) -> str:
        return ", ".join(f"{r / 1e9:.1f}" for r in self.readings) + " GFLOP/s"


def monitor_images(n_train: int, n_val: int, n_test: int, classes: int = 10) -> int:
    """Images the trainer evaluates per epoch: each split cut to ``train.MONITOR_PER_CLASS`` per class."""
    return sum(min(n, train.MONITOR_PER_CLASS * classes) for n in (n_train, n_val, n_test))


def store_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a benchmark of a built store: ``--dataset`` (default cifar10) and ``--results``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--results", default=None,
                        help="the built store (default: MINARCH_RESULTS, else results/ of the project root)")
    return parser


def commit() -> str:
    """The checkout's short commit, what each benchmark's output names ("unknown" outside git)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() \
        or "unknown"


def frontier_runs(args: argparse.Namespace, program: str):
    """The smallest-model chapter of the quick study on ``args.dataset`` (its context: store, device, data root),
    its compression grid and the runs its frontier compresses, from the store a book build left in ``args.results``.
    Where the dataset or the store is missing, ``program`` exits with status 2 and the error, which names the fix."""
    from minarch_core.analyses import frontier  # the analyses and the book: only the benchmarks of a built store
    from minarch_core.book import chapter
    from minarch_core.engine.errors import MinarchError
    try:
        ch = chapter.from_notebook("smallest", {"dataset": args.dataset, "profile": "quick", "seeds": None,
                                                "epochs": None, "train_per_class": None, "device": "cpu",
                                                "results": args.results, "data": None, "workers": 1,
                                                "renderer": "default", "figures": None})
        grid = ch.study.compression
        return ch, grid, frontier.chosen_runs(ch.store, ch.ask("configurations"), ch.ask("runs"), grid.seeds)
    except MinarchError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
