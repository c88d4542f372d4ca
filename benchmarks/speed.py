"""How fast minarch trains, measured against the textbook PyTorch loop on this machine, in one run.

    make benchmark          # or: python benchmarks/speed.py [--datasets mnist] [--seeds 30]

Prints, side by side:
1. the project's trainer vs the textbook loop (a torchvision-style dataset of PIL images + ToTensor + Normalize +
   DataLoader, batch 128, one seed at a time), in model-epochs per second, on the same configs, data and epochs;
2. seed batching: 30 seeds trained as the sweep batches them vs one at a time, in the project's trainer;
3. achieved training FLOP/s of the largest models vs this machine's fp32 matmul peak (a large torch.mm);
4. the peak memory of the largest quick-profile task, and the projected wall time of the quick and paper sweeps.

An epoch here is one pass over a stratified 5,000-image training subset plus the evaluation every minarch history
row records (train subset, 1,000 validation and 10,000 test images), for both trainers. FLOPs are counted exactly
by torch.utils.flop_counter. Projections price every run of a profile with a per-epoch cost a + b x FLOPs fitted per
trainer, dataset and family (the seeds batched as that profile's sweep batches them), at the profile's data sizes
and epochs. Never part of the tests: timings are not assertions.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from minarch_core.engine import data, models, profiles, sweep, train
from minarch_core.engine.config import RunConfig

SUBSET = dict(train_per_class=500, val_per_class=100)
TARGETS = {"textbook": 30.0, "seed batching": 5.0, "matmul peak": 0.60}
DEVICE = "cpu"  # what this benchmark measures; the trainer runs on CUDA too (MINARCH_DEVICE)
MODELS = [("dnn", {"widths": [w] * d}) for d in (1, 4) for w in (1, 10, 100, 1000)] + \
         [("cnn", {"channels": c}) for c in (1, 8, 32)] + [("vit", {"dim": 16, "depth": 2, "heads": 4})]


class TextbookImages(Dataset):
    """What torchvision's MNIST/CIFAR10 classes do per item: array -> PIL image -> transform."""

    def __init__(self, x: np.ndarray, y: np.ndarray, spec: data.DatasetSpec):
        self.x, self.y = x, y
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = self.x[i]
        img = Image.fromarray(img[..., 0], mode="L") if img.shape[-1] == 1 else Image.fromarray(img)
        return self.transform(img), int(self.y[i])


def textbook_splits(name: str) -> dict[str, TextbookImages]:
    """The same images as minarch's splits for SUBSET (same indices), served the textbook way."""
    x_train, y_train, x_test, y_test = data.arrays(name)
    val_idx = data.stratified_indices(y_train, SUBSET["val_per_class"], data.SPLIT_SEED)
    pool = np.setdiff1d(np.arange(len(y_train)), val_idx)
    train_idx = pool[data.stratified_indices(y_train[pool], SUBSET["train_per_class"], 0)]
    spec = data.spec(name)
    return {"train": TextbookImages(x_train[train_idx], y_train[train_idx], spec),
            "val": TextbookImages(x_train[val_idx], y_train[val_idx], spec), "test": TextbookImages(x_test, y_test, spec)}


def textbook_epoch_s(cfg: RunConfig, splits, dataset: data.Dataset, epochs: int = 1) -> float:
    """The loop from the PyTorch tutorials: DataLoader batches, train, then evaluate each split."""
    model = train.build_model(cfg, dataset)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = DataLoader(splits["train"], batch_size=128, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for split in splits.values():
                for x, y in DataLoader(split, batch_size=1000):
                    logits = model(x)
                    F.cross_entropy(logits, y), (logits.argmax(1) == y).sum()
    return (time.perf_counter() - start) / epochs


def minarch_epoch_s(cfgs: list[RunConfig], dataset: data.Dataset) -> float:
    """Seconds per model-epoch of training ``cfgs`` as a sweep does (``train.train_seeds`` on the seed batches
    ``sweep.seed_batch_for`` chooses), the untrained row excluded."""
    seconds = 0.0
    for batch in sweep.seed_batches(cfgs, lambda cfg: sweep.seed_batch_for(cfg, DEVICE)):
        seconds += float(train.train_seeds(batch, dataset, DEVICE)[0].history.time_s.iloc[-1]) * len(batch)
    return seconds / len(cfgs) / cfgs[0].epochs


def sizes(name: str) -> tuple[tuple[int, int, int], int, int]:
    """(image shape C,H,W; official training images; test images) of dataset ``name``."""
    x_train, _, x_test, _ = data.arrays(name)
    return (x_train.shape[3], *x_train.shape[1:3]), len(x_train), len(x_test)


def flops_per_epoch(family: str, arch: dict, name: str, n_train: int, n_eval: int) -> float:
    """Exact FLOPs of one training pass (forward + backward) plus the evaluation passes, counted on one batch."""
    shape = sizes(name)[0]
    model = models.build(family, arch, shape, 10)
    x, y = torch.zeros(128, *shape), torch.zeros(128, dtype=torch.long)
    with FlopCounterMode(display=False) as train_count:
        F.cross_entropy(model(x), y).backward()
    with FlopCounterMode(display=False) as eval_count, torch.no_grad():
        model(x)
    return (train_count.get_total_flops() * n_train + eval_count.get_total_flops() * n_eval) / 128


def matmul_peak(n: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def train_only_flops(cfgs, dataset) -> float:
    """Achieved FLOP/s of the training steps alone (no evaluation), for the seed batch ``cfgs``."""
    stack = train.Stack([train.build_model(c, dataset) for c in cfgs], DEVICE)
    opt = train.optimizer(cfgs[0], stack.params.values())
    orders = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    stack.train_epoch(opt, F.cross_entropy, dataset.train, 128, orders)  # warm-up
    start = time.perf_counter()
    stack.train_epoch(opt, F.cross_entropy, dataset.train, 128, orders)
    elapsed = time.perf_counter() - start
    per_epoch = flops_per_epoch(cfgs[0].family, cfgs[0].arch, cfgs[0].dataset, len(dataset.train), 0)
    return per_epoch * len(cfgs) / elapsed


def fit(flops: list[float], seconds: list[float]) -> tuple[float, float]:
    """(a, b) of seconds = a + b * flops, least squares in relative error, both kept >= 0."""
    f, t = np.asarray(flops), np.asarray(seconds)
    a, b = np.linalg.lstsq(np.stack([1 / t, f / t], 1), np.ones_like(t), rcond=None)[0]
    return max(a, 0.0), max(b, 0.0)


def cost_models(rows: list[dict], key: str) -> dict[str, tuple[float, float]]:
    """Per family, (a, b) of seconds per epoch = a + b x FLOPs fitted to its measured models (b alone for one)."""
    out = {}
    for family in dict.fromkeys(r["cfg"].family for r in rows):
        rs = [r for r in rows if r["cfg"].family == family]
        out[family] = (fit([r["flops"] for r in rs], [r[key] for r in rs]) if len(rs) > 1
                       else (0.0, rs[0][key] / rs[0]["flops"]))
    return out


def projected_s(profile: profiles.Profile, name: str, costs: dict[str, tuple[float, float]]) -> float:
    """Seconds of ``profile``'s sweep of ``name`` on one worker: every run's epochs priced by its family's cost
    model, the overhead ``a`` scaled by the number of training steps, ``b`` applied to the run's exact FLOPs."""
    _, n_official, n_test = sizes(name)
    n_train = (profile.train_per_class or (n_official // 10 - profile.val_per_class)) * 10
    n_eval = n_train + profile.val_per_class * 10 + n_test
    steps = n_train / (SUBSET["train_per_class"] * 10)  # relative to the benchmark's epochs
    total, cache = 0.0, {}
    for cfg in profile.configs(name):
        key = (cfg.family, str(cfg.arch))
        if key not in cache:
            a, b = costs[cfg.family]
            cache[key] = a * steps + b * flops_per_epoch(cfg.family, cfg.arch, name, n_train, n_eval)
        total += cache[key] * cfg.epochs
    return total


def largest_task_peak_rss(name: str) -> float:
    """Peak resident memory (bytes) of a fresh process training the quick profile's largest seed batch."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_peak_rss_child, (name,))


def _peak_rss_child(name: str) -> float:
    quick = profiles.get("quick")
    largest = max(quick.grids["dnn"].values, key=lambda widths: (len(widths), max(widths)))
    cfgs = [c for c in quick.configs(name, ["dnn"]) if c.arch["widths"] == list(largest)]
    train.train_seeds([c.replace(epochs=1) for c in cfgs], device=DEVICE)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--seeds", type=int, default=30, help="seeds in the seed-batching comparison")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"minarch benchmarks/speed.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit or 'unknown'}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, python {platform.python_version()}")
    peak = matmul_peak()
    print(f"fp32 matmul peak (4096x4096 torch.mm): {peak / 1e9:.1f} GFLOP/s\n")
    summary = {}
    for name in args.datasets:
        dataset, splits = data.load(name, **SUBSET), textbook_splits(name)
        print(f"== {name}: an epoch = {len(dataset.train)} training images + evaluation of train/val/test ==")
        print(f"{'model':38s} {'params':>9s} {'textbook':>9s} {'minarch':>9s} {'ratio':>6s} "
              f"{f'{args.seeds} seeds':>9s} {'batching':>9s}   (model-epochs/s)")
        rows, quick = [], profiles.get("quick")
        for family, arch in MODELS:
            cfg = RunConfig(name, family, arch, epochs=1, **SUBSET)
            n = models.n_params(train.build_model(cfg, dataset))
            textbook = textbook_epoch_s(cfg, splits, dataset)
            single = minarch_epoch_s([cfg], dataset)
            stacks = sweep.seed_batch_for(cfg, DEVICE) > 1  # the sweep stacks these seeds on this device
            batched = (minarch_epoch_s([cfg.replace(seed=s) for s in range(args.seeds)], dataset)
                       if stacks and n <= 100_000 else float("nan"))  # the target's range of sizes
            f = flops_per_epoch(family, cfg.arch, name, len(dataset.train),
                                len(dataset.train) + len(dataset.val) + len(dataset.test))
            quick_cost = (minarch_epoch_s([cfg.replace(seed=s) for s in range(quick.seeds)], dataset)
                          if stacks else single)  # as the quick sweep trains it: its seeds, batched as it batches
            rows.append(dict(cfg=cfg, params=n, textbook=textbook, single=single, batched=batched, flops=f,
                             quick=quick_cost, paper=batched if batched == batched else quick_cost))
            label = f"{family} " + ",".join(f"{k}={v}" for k, v in arch.items() if k != "patch")
            stacked = f"{1 / batched:9.2f} {single / batched:8.1f}x" if batched == batched else f"{'-':>9s} {'-':>9s}"
            print(f"{label:38s} {n:9,d} {1 / textbook:9.2f} {1 / single:9.2f} {textbook / single:5.1f}x {stacked}",
                  flush=True)
        gain = lambda rs: float(np.exp(np.mean([np.log(r["single"] / r["batched"]) for r in rs])))  # noqa: E731
        stacked = [r for r in rows if r["batched"] == r["batched"]]
        tb_quick = projected_s(quick, name, cost_models(rows, "textbook"))
        mine_quick = projected_s(quick, name, cost_models(rows, "quick"))
        paper = projected_s(profiles.get("paper"), name, cost_models(rows, "paper"))
        largest = max((r for r in rows if r["cfg"].family == "dnn"), key=lambda r: r["params"])
        achieved = train_only_flops([largest["cfg"]], dataset)
        summary[name] = dict(batching=gain(stacked), quick_ratio=tb_quick / mine_quick, peak_frac=achieved / peak)
        families = ", ".join(sorted({r["cfg"].family for r in stacked}))
        print(f"\nseed batching, {args.seeds} seeds in the sweep's seed batches vs one at a time, geometric mean over "
              f"the models <= 100k parameters whose seeds the sweep stacks on {DEVICE} ({families}): "
              f"{gain(stacked):.1f}x")
        print(f"largest DNN ({largest['params']:,d} parameters): training at {achieved / 1e9:.1f} GFLOP/s = "
              f"{achieved / peak:.0%} of the matmul peak")
        print(f"quick-profile sweep of {name} ({len(quick.configs(name))} runs), projected on one worker with "
              f"{torch.get_num_threads()} threads: textbook "
              f"{tb_quick / 3600:.1f} h, minarch {mine_quick / 60:.1f} min, {tb_quick / mine_quick:.0f}x")
        print(f"paper-profile sweep of {name} ({len(profiles.get('paper').configs(name))} runs), projected: "
              f"{paper / 3600:.0f} h on this machine\n", flush=True)
    rss = largest_task_peak_rss(args.datasets[-1])
    print(f"peak memory of the quick profile's largest task ({args.datasets[-1]}): {rss / 2**30:.2f} GiB per worker")
    print("\n== targets (worst dataset) ==")
    worst = lambda key: min(s[key] for s in summary.values())  # noqa: E731
    for label, value, target in (("vs textbook loop, quick sweep", worst("quick_ratio"), TARGETS["textbook"]),
                                 ("seed batching, <= 100k params", worst("batching"), TARGETS["seed batching"]),
                                 ("largest DNN vs matmul peak", worst("peak_frac"), TARGETS["matmul peak"])):
        verdict = "met" if value >= target else f"missed: {target / value:.1f}x short"
        print(f"{label:36s} {value:8.2f} (target {target:g}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
