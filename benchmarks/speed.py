"""How fast minarch trains and compresses, measured against plain PyTorch loops on this machine, in one run.

    make benchmark          # or: python benchmarks/speed.py [--datasets mnist] [--seeds 30]

Prints, side by side, in model-epochs per second on the same configs, data and epochs:
1. the project's trainer against a **competent plain loop** (tensors in memory, index slices, one seed at a time,
   ``torch.optim.Adam``, every split evaluated every epoch at batch 1,000: what a careful practitioner writes) and
   against the **textbook loop** (a torchvision-style dataset of PIL images + ToTensor + Normalize + DataLoader), a
   second, labelled baseline that mostly measures its data pipeline;
2. seed batching: 30 seeds of one configuration trained as the sweep stacks them vs one at a time;
3. the quick profile's training measured whole, on one worker: every bundle the sweep cuts it into
   (``sweep.bundles``: a seed's architectures of a family fused into one program, ViT seeds stacked) against the
   engine before bundles (commit ``BEFORE``, checked out in a git worktree and run in a process of its own) and
   this engine with one configuration per bundle (``fuse=False``: what fusing alone adds), each bundle trained for
   two epochs and projected to the profile's 15, per family and in total; the bundles'
   utilisation (the model FLOPs of everything the sweep computes: training, per-epoch monitor evaluation, the final
   evaluation, over their wall time and the fp32 matmul peak, the largest of the readings taken before each dataset
   and at the end of the run: a VM's speed drifts within a run); and the competent plain loop's projection (from the
   models of 1) against the bundles';
4. the compression frontier: a model's 35 compressed variants evaluated as the frontier does
   (``train.evaluate_states``: stacked on CUDA; on a CPU one at a time in cache-sized chunks, since stacking measured
   slower there) vs one model at a time in batches of 4,096 rows, with the one-at-a-time pass's utilisation (what
   stacking could gain at most); a model's component variants evaluated sharing the float model's layers against one
   at a time; an epoch of quantization-aware fine-tuning of the recovery grid's variants stacked as
   ``recovery.finetune`` stacks them against one at a time; pruning and sizing a 4x500 DNN's variants as the
   frontier does against torch's topk pruning and the packed bytes; and the minutes the frontier chapter added per
   dataset to the last quick book (``book/build-info.json``: the worst dataset's chapter time over the datasets
   whose chapters ran at once), with what share of the matmul peak its target would need, from the last
   ``make phases`` (``benchmarks/phases.py``: the chapter phase by phase beside its model arithmetic);
5. the last quick book built from an empty store (``book/build-info-empty-store.json``, which ``make book`` writes
   when it trained every run) against its 20-minute target, where its wall time went, and why: its training beside
   the floor of its model arithmetic at the matmul peak, its chapters, and the lever that is left.

In 1 and 2 an epoch is one pass over a stratified 5,000-image training subset plus the evaluation that loop
records. FLOPs are counted exactly by torch.utils.flop_counter. The plain and textbook loops' projections price every
run of the quick profile with a per-epoch cost a + b x FLOPs fitted per loop, dataset and family, at the profile's
data sizes and epochs. Never part of the tests: timings are not assertions.
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import common
from findings import TARGETS as FINDINGS_TARGETS
from minarch_core.book import pipeline
from minarch_core.analyses import reach, tables
from minarch_core.engine import data, models, profiles, settings, sweep, train
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.config import RunConfig

SUBSET = dict(train_per_class=500, val_per_class=100)
TARGETS = {"bundles vs seed-stacked, quick training": 1.5, "bundles vs seed-stacked, worst family": 1.0,
           "competent loop, quick sweep": 3.0, "utilisation, quick sweep": 0.50, "utilisation, CNN": 0.25,
           "utilisation, ViT": 0.25, "frontier evaluation vs one at a time": 10.0,
           "frontier chapter, min added per dataset": 3.0, "quick book rebuild on a trained store, min": 12.0,
           "quick book from an empty store, min": 35.0, "tables recomputed after a docstring edit": 0,
           "bf16 vs fp32, quick training": 1.0, "hybrid families, added quick training": 0.15, **FINDINGS_TARGETS}
# racing's 5x target is retired (its tolerance stays 0, so recommend's answers stay): what bounds it is reported
LOWER_IS_BETTER = {"frontier chapter, min added per dataset", "quick book rebuild on a trained store, min",
                   "quick book from an empty store, min", "hybrid families, added quick training",
                   "tables recomputed after a docstring edit", *FINDINGS_TARGETS}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout: book records and outputs
PHASES = "benchmarks/phases-latest.txt"  # the frontier chapter's time by phase: `make phases` writes it
RACING = "benchmarks/racing-latest.txt"  # what bounds racing's savings: `make racing` writes it
FINDINGS = "benchmarks/findings-latest.txt"  # what the verdicts rest on: `make findings` writes it
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


def competent_epoch_s(cfg: RunConfig, dataset: data.Dataset, epochs: int = 1) -> float:
    """The plain loop a careful practitioner writes: tensors in memory, a random permutation sliced into minibatches,
    one seed at a time, torch.optim.Adam, then every split evaluated at batch 1,000 under no_grad."""
    model = train.build_model(cfg, dataset)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x, y = dataset.train.x, dataset.train.y
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for split in (dataset.train, dataset.val, dataset.test):
                for i in range(0, len(split), 1000):
                    logits = model(split.x[i:i + 1000])
                    F.cross_entropy(logits, split.y[i:i + 1000]), (logits.argmax(1) == split.y[i:i + 1000]).sum()
    return (time.perf_counter() - start) / epochs


def frontier_speed(name: str, peak: float) -> dict:
    """Per model: seconds to evaluate its 35 frontier variants on the test split as the frontier does and one at a
    time in batches of ``train.EVAL_BATCH`` rows, the number of variants, and the one-at-a-time pass's utilisation
    (forward FLOPs / its time / the matmul peak): what any stacking could gain at most is about its inverse."""
    from minarch_core.analyses import frontier
    dataset = data.load(name, **SUBSET)
    out = {}
    for family, arch in (("dnn", {"widths": [100]}), ("dnn", {"widths": [500]}), ("cnn", {"channels": 8})):
        cfg = RunConfig(name, family, arch, epochs=1, **SUBSET)
        model = train.build_model(cfg, dataset)
        states = [state for *_, state in frontier.compressed(lambda: train.build_model(cfg, dataset),
                                                             frontier.pairs(DEFAULT.frontier),
                                                             DEFAULT.frontier.settings[0])]
        ours, one = evaluation_both_ways(model, states, dataset.test, chunk=train.EVAL_BATCH)
        flops = len(states) * len(dataset.test) * common.per_image(name, family, arch)[1]
        out[models.family(family).label(models.normalise_arch(family, arch))] = (ours, one, len(states),
                                                                                 flops / one / peak)
    return out


def sharing_speed(name: str) -> dict:
    """Per model: seconds to evaluate its component variants on the test split as ``components.sensitivity`` does
    (``train.evaluate_states``: a DNN's or CNN's layers shared with the float model run once per chunk) and one at a
    time (``train.evaluate`` per weight set)."""
    from minarch_core.analyses import components
    dataset = data.load(name, **SUBSET)
    out = {}
    for family, arch in (("dnn", {"widths": [500, 500]}), ("cnn", {"channels": 8})):
        cfg = RunConfig(name, family, arch, epochs=1, **SUBSET)
        model = train.build_model(cfg, dataset)
        _, states = components.variants(model)
        ours, one = evaluation_both_ways(model, states, dataset.test)
        out[models.family(family).label(models.normalise_arch(family, arch))] = (ours, one, len(states))
    return out


def evaluation_both_ways(model, states: list[dict], split, chunk: int | None = None) -> tuple[float, float]:
    """Seconds to evaluate ``states`` on ``split`` with ``train.evaluate_states`` and one at a time with
    ``train.evaluate`` in chunks of ``chunk`` rows (default: its cache-sized chunks)."""
    start = time.perf_counter()
    train.evaluate_states(model, states, split)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for state in states:
        model.load_state_dict(state)
        train.evaluate(model, split, chunk=chunk)
    return ours, time.perf_counter() - start


def finetune_speed(name: str) -> dict:
    """Per model: seconds for one epoch of quantization-aware fine-tuning of the recovery grid's variants as
    ``recovery.finetune`` does (``recovery.per_stack`` at a time) and one per stack, and how many it stacked."""
    from types import SimpleNamespace

    from minarch_core.analyses import frontier, recovery
    dataset = data.load(name, **SUBSET)
    grid = frontier.pairs(DEFAULT.recovery)
    out = {}
    for family, arch in (("dnn", {"widths": [100]}), ("cnn", {"channels": 8}), ("cnn", {"channels": 32}),
                         ("vit", {"dim": 16})):
        cfg = RunConfig(name, family, arch, epochs=1, **SUBSET)
        run = SimpleNamespace(config=cfg, model=lambda ds, cfg=cfg: train.build_model(cfg, ds).to(ds.train.x.device))
        start = time.perf_counter()
        recovery.finetune(run, dataset, grid, epochs=1)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for variant in grid:
            recovery.finetune(run, dataset, [variant], epochs=1)
        out[models.family(family).label(models.normalise_arch(family, arch))] = (
            ours, time.perf_counter() - start, len(grid), recovery.per_stack(run, dataset, len(grid)))
    return out


def compress_speed(name: str) -> tuple[float, float]:
    """Seconds to prune and size the 35 frontier variants of a 4x500 DNN of ``name``: as the frontier does
    (``pruning.L1Magnitude``'s kthvalue selection, ``encoding.size`` counting bytes) and with torch's own
    ``L1Unstructured`` (a topk) and the packed encoding's length."""
    from torch.nn.utils import prune

    from minarch_core.analyses import encoding, frontier, pruning
    shape, n_classes = data.spec(name).input_shape, data.spec(name).n_classes
    model = models.build("dnn", {"widths": [500] * 4}, shape, n_classes)
    fresh = lambda: copy.deepcopy(model)  # noqa: E731
    pairs, (scheme, granularity) = frontier.pairs(DEFAULT.frontier), DEFAULT.frontier.settings[0]
    options = dict(scheme=scheme, granularity=granularity)
    start = time.perf_counter()
    for _, precision, pruned, _ in frontier.compressed(fresh, pairs, (scheme, granularity)):
        encoding.size(pruned, precision, **options)
    ours = time.perf_counter() - start
    method = pruning.L1Magnitude
    try:
        pruning.L1Magnitude = prune.L1Unstructured  # what prune_to used before
        start = time.perf_counter()
        for _, precision, pruned, _ in frontier.compressed(fresh, pairs, (scheme, granularity)):
            len(encoding.encode(pruned, precision, **options))
        theirs = time.perf_counter() - start
    finally:
        pruning.L1Magnitude = method
    return ours, theirs


def minarch_epoch_s(cfgs: list[RunConfig], dataset: data.Dataset) -> float:
    """Seconds per model-epoch of training ``cfgs`` as a sweep does (``train.train_bundle`` on its ``bundles``),
    the untrained row excluded (a run's ``time_s``: its share of its bundle's time)."""
    seconds = 0.0
    for bundle in sweep.bundles(cfgs, DEVICE):
        seconds += sum(float(r.history.time_s.iloc[-1]) for r in train.train_bundle(bundle, dataset, DEVICE))
    return seconds / len(cfgs) / cfgs[0].epochs


TIMED_EPOCHS = 2  # epochs each bundle of the quick profile trains in the benchmark


def quick_training(name: str, family: str, fuse: bool, precision: str = "fp32") -> float:
    """Seconds to train the quick profile's every ``family`` run of ``name`` on one worker, as its sweep cuts them
    into bundles (``fuse=False``: one configuration per bundle), measured whole: every bundle trained for
    ``TIMED_EPOCHS`` epochs, its epochs' time (monitor rows included) read from its runs' histories (their
    ``time_s`` add up to it) and scaled to the profile's epochs, the rest of its wall time (building, the untrained
    row, the final evaluation of the whole splits) counted once."""
    quick = profiles.get("quick")
    dataset = data.load(name, train_per_class=quick.train_per_class, val_per_class=quick.val_per_class)
    seconds = 0.0
    configs = quick.replace(train_precision=precision).configs(name)
    for bundle in sweep.bundles([c for c in configs if c.family == family], DEVICE, fuse=fuse):
        start = time.perf_counter()  # the bundles as the profile's epochs cut them
        results = train.train_bundle([c.replace(epochs=TIMED_EPOCHS) for c in bundle], dataset, DEVICE)
        wall, timed = time.perf_counter() - start, sum(float(r.history.time_s.iloc[-1]) for r in results)
        seconds += wall - timed + quick.epochs * timed / TIMED_EPOCHS
    return seconds


BEFORE = "2577ece"  # the engine before bundles: one configuration's seeds per task (train_seeds, seed_batch_for)
BEFORE_CHILD = """
import json, sys, time
from minarch_core.engine import data, profiles, sweep, train
name, family, timed_epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
quick = profiles.get("quick")
dataset = data.load(name, train_per_class=quick.train_per_class, val_per_class=quick.val_per_class)
seconds = 0.0
for batch in sweep.seed_batches([c for c in quick.configs(name) if c.family == family],
                                lambda cfg: sweep.seed_batch_for(cfg, "cpu")):
    start = time.perf_counter()
    results = train.train_seeds([c.replace(epochs=timed_epochs) for c in batch], dataset, "cpu")
    wall, timed = time.perf_counter() - start, sum(float(r.history.time_s.iloc[-1]) for r in results)
    seconds += wall - timed + quick.epochs * timed / timed_epochs
print(json.dumps(seconds))
"""


def before_bundles(name: str, family: str, tree: str) -> float:
    """``quick_training`` with the engine of commit ``BEFORE`` (checked out at ``tree``), in a process of its own:
    today's engine before bundles, measured in the same run and on the same machine as the bundles."""
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, "-c", BEFORE_CHILD, name, family, str(TIMED_EPOCHS)],
                          capture_output=True, text=True, env=env, cwd=tree)
    if done.returncode:
        raise RuntimeError(f"the engine of {BEFORE} failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def sizes(name: str) -> tuple[tuple[int, int, int], int, int]:
    """(image shape C,H,W; official training images; test images) of dataset ``name``."""
    x_train, _, x_test, _ = data.arrays(name)
    return (x_train.shape[3], *x_train.shape[1:3]), len(x_train), len(x_test)


def flops_per_epoch(family: str, arch: dict, name: str, n_train: int, n_eval: int) -> float:
    """Exact FLOPs of one training pass (forward + backward) plus the evaluation passes."""
    step, forward = common.per_image(name, family, arch)
    return step * n_train + forward * n_eval


def cost_models(rows: list[dict], key: str, flops: str) -> dict[str, tuple[float, float]]:
    """Per family, (a, b) of seconds per epoch = a + b x FLOPs (column ``flops``) fitted to its measured models'
    column ``key`` (b alone for one model)."""
    out = {}
    for family in dict.fromkeys(r["cfg"].family for r in rows):
        rs = [r for r in rows if r["cfg"].family == family]
        t, f = [r[key] for r in rs], [r[flops] for r in rs]
        out[family] = common.fit(f, t) if len(rs) > 1 else (0.0, t[0] / f[0])
    return out


def projected(profile: profiles.Profile, name: str, costs: dict[str, tuple[float, float]], monitor: bool):
    """(seconds, FLOPs) of ``profile``'s sweep of ``name`` on one worker, per family of ``costs``: every run's epochs
    priced by its family's cost model (the overhead ``a`` scaled by the number of training steps, ``b`` applied to
    the epoch's exact FLOPs). ``monitor``: the trainer's evaluation (monitor subsets each epoch, the whole splits once);
    else every split every epoch (the baselines)."""
    _, n_official, n_test = sizes(name)
    n_train = (profile.train_per_class or (n_official // 10 - profile.val_per_class)) * 10
    n_val = profile.val_per_class * 10
    n_full = n_train + n_val + n_test
    n_epoch = common.monitor_images(n_train, n_val, n_test) if monitor else n_full
    steps = n_train / (SUBSET["train_per_class"] * 10)  # relative to the benchmark's epochs
    seconds, flops, cache = {}, {}, {}
    for cfg in profile.configs(name):
        if cfg.family not in costs:  # a family without a cost model (the hybrids: the baselines fit the paper's)
            continue
        key = (cfg.family, str(cfg.arch))
        if key not in cache:
            a, b = costs[cfg.family]
            epoch = flops_per_epoch(cfg.family, cfg.arch, name, n_train, n_epoch)
            final = flops_per_epoch(cfg.family, cfg.arch, name, 0, n_full) if monitor else 0.0
            cache[key] = (a * steps + b * epoch, b * final, epoch, final)
        per_epoch_s, final_s, epoch, final = cache[key]
        seconds[cfg.family] = seconds.get(cfg.family, 0.0) + per_epoch_s * cfg.epochs + final_s
        flops[cfg.family] = flops.get(cfg.family, 0.0) + epoch * cfg.epochs + final
    return seconds, flops


def book_record(name: str = "build-info.json") -> dict | None:
    """What a book build recorded in book/: the last build (build-info.json), or the last from an empty store
    (``pipeline.EMPTY_STORE_RECORD``, kept until the next such build); None when there is none."""
    path = os.path.join(ROOT, "book", name)
    return json.load(open(path)) if os.path.exists(path) else None


def built(book: dict) -> str:
    """A book build record in words: commit, start, wall time, machine, runs trained."""
    return (f"commit {book['commit']}, {book['started']}, {book['seconds'] / 60:.1f} min on {book['machine']}, "
            + (f"{book['runs_trained']:,} of {book['runs']:,} runs trained" if "runs" in book else
               "runs trained not recorded") + f", {book.get('parallel', 1)} datasets' chapters at once")


def spent(book: dict) -> str:
    """A book build's minutes by step: training (wall), then each chapter summed over its datasets (chapters of
    several datasets ran at once, so these overlap), largest first."""
    minutes: dict[str, float] = {}
    for t in book["notebooks"]:
        minutes[t["chapter"]] = minutes.get(t["chapter"], 0.0) + t["seconds"] / 60
    return ", ".join(f"{name} {m:.1f} min" for name, m in sorted(minutes.items(), key=lambda kv: -kv[1]))


def phases_why(path: str = PHASES) -> str:
    """The frontier chapter's why, from the last ``make phases`` (``benchmarks/phases.py``): where it ran and what
    share of the matmul peak the chapter's target needs."""
    full = os.path.join(ROOT, path)
    lines = open(full).read().splitlines() if os.path.exists(full) else []
    if len(lines) < 2:
        return f"  why: not measured (make phases DATASET=cifar10 after a book build writes {path})"
    head = re.search(r"commit (\S+), (\w+),", lines[0])
    where = f"{head[2]}, commit {head[1]}" if head else "unknown run"
    return f"  why ({path}: {where}; each phase's share of the peak there):{lines[-1].removeprefix(' ')}"


def racing_saving(path: str = PHASES) -> float | None:
    """How many times fewer validation image-evaluations racing took than measuring every variant on the whole split,
    in the last ``make phases`` (None before one that raced)."""
    full = os.path.join(ROOT, path)
    found = re.search(r"racing: .*\(([\d.]+)x fewer\)", open(full).read()) if os.path.exists(full) else None
    return float(found[1]) if found else None


def racing_why(path: str = RACING) -> str:
    """What bounds racing's savings, from the last ``make racing`` (``benchmarks/racing.py``): each stopping rule
    replayed on every variant measured whole, with its savings and the accuracy its Pareto set loses."""
    full = os.path.join(ROOT, path)
    lines = open(full).read().splitlines() if os.path.exists(full) else []
    head = re.search(r"commit (\S+), (\w+):", lines[0]) if lines else None
    rules = [m for m in (re.match(r"\s+(.+?)\s+([\d.]+)x\s+[\d,]+\s+([\d.]+%)$", line) for line in lines[1:]) if m]
    if not head or not rules:
        return f"  what bounds racing: not measured (make racing DATASET=cifar10 after a book build writes {path})"
    return (f"  what bounds racing ({path}: {head[2]}, commit {head[1]}; each rule replayed on every variant "
            "measured whole, its image-evaluations fewer and the accuracy its Pareto set loses): "
            + "; ".join(f"{m[1]} {m[2]}x ({m[3]})" for m in rules))


def why_missed(book: dict, profile: profiles.Profile, peak: float, target_min: float) -> str:
    """Why an empty-store build took what it took, against ``target_min``, and the lever that is left: its training
    wall time beside the floor of its model arithmetic at this machine's matmul peak (every run's FLOPs as the
    sweep computes them, priced at zero overhead), and its chapters' wall time."""
    free = {f: (0.0, 0.0) for f in models.FAMILIES}  # no overhead, no time per FLOP: what is left is the FLOPs
    flops = sum(sum(projected(profile, d, free, monitor=True)[1].values()) for d in book["datasets"])
    training = sum(t["seconds"] for t in book["notebooks"] if t["chapter"] == "training") / 60
    floor, chapters = flops / peak / 60, book["seconds"] / 60 - training
    lines = [f"  why: training took {training:.1f} min of wall for {flops / 1e15:.2f} PFLOP of model arithmetic "
             f"({floor:.1f} min at this machine's matmul peak: {floor / training:.0%} utilisation); the chapters took "
             f"{chapters:.1f} min of wall, {book.get('parallel', 1)} datasets at once"]
    if book["seconds"] / 60 > target_min:
        lines.append(f"  next lever: even training at the matmul peak, with the chapters as they ran, the build would "
                     f"take {floor + chapters:.1f} min; at this build's rates {target_min:g} min hold "
                     f"{target_min * 60 / book['seconds']:.0%} of its work: the quick profile itself (its seeds, "
                     "training images or widest networks), a product decision the method chapter would state")
    return "\n".join(lines)


def findings_targets(path: str = FINDINGS) -> dict:
    """The targets ``make findings`` measured (what the verdicts rest on), read from its last output."""
    if not os.path.exists(os.path.join(ROOT, path)):
        return {}
    out = {}
    for line in open(os.path.join(ROOT, path)):
        for label in FINDINGS_TARGETS:
            if line.startswith(label):
                out[label] = float(line[len(label):].split()[0])
    return out


def reworded_recomputes() -> int:
    """How many of a dataset's analysis tables a build would compute again after every docstring and comment of
    the package is reworded (``reach.reword`` on a copy): what the per-table code fingerprints promise is none."""
    root = Path(ROOT) / "minarch_core"
    with tempfile.TemporaryDirectory(prefix="minarch-reworded-") as tmp:
        shutil.copytree(root, Path(tmp) / "minarch_core", ignore=shutil.ignore_patterns("__pycache__"))
        for path in (Path(tmp) / "minarch_core").rglob("*.py"):
            path.write_text(reach.reword(path.read_text()))
        now, reworded = reach.Package(root, "minarch_core"), reach.Package(Path(tmp) / "minarch_core", "minarch_core")
        changed = {name for name, spec in tables.TABLES.items()
                   if now.digest(spec.make.__module__, name) != reworded.digest(spec.make.__module__, name)}
    recomputed = {name for name in tables.TABLES if name in changed or tables._reads(name) & changed}
    print(f"every docstring and comment of minarch_core reworded: {len(recomputed)} of the {len(tables.TABLES)} "
          f"analysis tables would be computed again")
    return len(recomputed)


def largest_task_peak_rss(name: str) -> float:
    """Peak resident memory (bytes) of a fresh process training the quick profile's largest bundle (by its
    estimated memory) for one epoch."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_peak_rss_child, (name,))


def _peak_rss_child(name: str) -> float:
    largest = max(sweep.bundles(profiles.get("quick").configs(name), DEVICE), key=lambda b: sum(map(sweep.memory, b)))
    train.train_bundle([c.replace(epochs=1) for c in largest], device=DEVICE)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--seeds", type=int, default=30, help="seeds in the seed-batching comparison")
    args = parser.parse_args(argv)
    print(f"minarch benchmarks/speed.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {common.commit()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, python {platform.python_version()}")
    peak, results, achieved = common.Peak(), {}, {}
    with tempfile.TemporaryDirectory(prefix="minarch-before-") as tree:
        subprocess.run(["git", "worktree", "add", "--detach", "--force", tree, BEFORE], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            measure(args, peak, results, achieved, tree)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
    report(args, peak, results, achieved)
    return 0


def measure(args, peak: common.Peak, results: dict, achieved: dict, tree: str) -> None:
    """Every per-dataset section of the output; ``tree`` holds the engine of ``BEFORE``."""
    quick = profiles.get("quick")
    for name in args.datasets:
        print(f"fp32 matmul peak (4096x4096 torch.mm), the largest reading so far: {peak.read() / 1e9:.1f} GFLOP/s")
        dataset, splits = data.load(name, **SUBSET), textbook_splits(name)
        print(f"== {name}: an epoch = {len(dataset.train)} training images + that loop's evaluation ==")
        print(f"{'model':34s} {'params':>9s} {'textbook':>9s} {'plain':>7s} {'minarch':>8s} {'vs plain':>8s} "
              f"{f'{args.seeds} seeds':>9s} {'batching':>8s} {'bf16':>6s}   (model-epochs/s; bf16: its speed "
              f"over fp32's)")
        rows = []
        for family, arch in MODELS:
            cfg = RunConfig(name, family, arch, epochs=1, **SUBSET)
            n = models.n_params(train.build_model(cfg, dataset))
            textbook, plain = textbook_epoch_s(cfg, splits, dataset), competent_epoch_s(cfg, dataset)
            single = minarch_epoch_s([cfg], dataset)
            bf16 = single / minarch_epoch_s([cfg.replace(train_precision="bf16")], dataset)
            stacks = sweep.seeds_per_program(cfg, DEVICE, 1) > 1
            batched = (minarch_epoch_s([cfg.replace(seed=s) for s in range(args.seeds)], dataset)
                       if stacks and n <= 100_000 else float("nan"))
            full = len(dataset.train) + len(dataset.val) + len(dataset.test)
            rows.append(dict(cfg=cfg, params=n, textbook=textbook, plain=plain, single=single, batched=batched,
                             flops_full=flops_per_epoch(family, cfg.arch, name, len(dataset.train), full)))
            label = f"{family} " + ",".join(f"{k}={v}" for k, v in arch.items() if k != "patch")
            stacked = f"{1 / batched:9.2f} {single / batched:7.1f}x" if batched == batched else f"{'-':>9s} {'-':>8s}"
            print(f"{label:34s} {n:9,d} {1 / textbook:9.2f} {1 / plain:7.2f} {1 / single:8.2f} {plain / single:7.1f}x "
                  f"{stacked} {bf16:5.2f}x", flush=True)
        fits = {key: cost_models(rows, key, "flops_full") for key in ("textbook", "plain")}
        secs = {key: sum(projected(quick, name, fits[key], monitor=False)[0].values()) for key in fits}
        stacked = [np.log(r["single"] / r["batched"]) for r in rows if r["batched"] == r["batched"]]
        print(f"\nseed batching, {args.seeds} seeds vs one at a time (geometric mean over the models <= 100k "
              f"parameters whose seeds the sweep stacks on {DEVICE}): {float(np.exp(np.mean(stacked))):.1f}x")
        mine, alone, before, hybrids, bf16s = {}, {}, {}, {}, {}
        for family in models.FAMILIES:  # the three side by side, family by family, so that drift spares the ratios
            if models.family(family).parents:  # a hybrid: no engine before bundles to compare with, only its share
                hybrids[family] = quick_training(name, family, fuse=True)
                continue
            mine[family] = quick_training(name, family, fuse=True)
            alone[family] = quick_training(name, family, fuse=False)
            before[family] = before_bundles(name, family, tree)
            if settings.cpu_has_bf16():  # elsewhere bf16 is emulated: the per-model column above says what it costs
                bf16s[family] = quick_training(name, family, fuse=True, precision="bf16")
        flops = projected(quick, name, {f: (0.0, 0.0) for f in models.FAMILIES}, monitor=True)[1]
        total = sum(mine.values())  # the paper's families: what the ratios before hybrids compared
        rate = {fam: flops[fam] / mine[fam] for fam in mine}  # FLOP/s; over the largest peak at the end
        results[name] = {"competent loop, quick sweep": secs["plain"] / total,
                         "bundles vs seed-stacked, quick training": sum(before.values()) / total,
                         "bundles vs seed-stacked, worst family": min(before[f] / mine[f] for f in mine),
                         "hybrid seconds": sum(hybrids.values()), "paper families' seconds": total,
                         **({"bf16 vs fp32, quick training": total / sum(bf16s.values())} if bf16s else {})}
        if bf16s:
            print(f"bf16 autocast, the quick sweep's paper families measured the same way: {sum(bf16s.values()) / 60:.1f}"
                  f" min against fp32's {total / 60:.1f} ({total / sum(bf16s.values()):.2f}x); by family: " + ", ".join(
                      f"{fam} {mine[fam] / bf16s[fam]:.2f}x" for fam in bf16s))
        achieved[name] = {"utilisation, quick sweep": sum(flops.values()) / total,
                          "utilisation, CNN": rate.get("cnn", np.nan), "utilisation, ViT": rate.get("vit", np.nan)}
        print(f"quick sweep of {name} ({len(quick.configs(name))} runs; its paper families below, the hybrids after) "
              f"on one worker with {torch.get_num_threads()} "
              f"threads, measured whole for {TIMED_EPOCHS} epochs and projected to {quick.epochs}: bundles "
              f"{total / 60:.1f} min; the engine before bundles (seed-stacked, commit {BEFORE}) {sum(before.values()) / 60:.1f} min "
              f"({sum(before.values()) / total:.2f}x); this engine one configuration per bundle "
              f"{sum(alone.values()) / 60:.1f} min ({sum(alone.values()) / total:.2f}x: what fusing adds); "
              f"projected from the models above: the competent plain loop {secs['plain'] / 60:.1f} min "
              f"({secs['plain'] / total:.2f}x), the textbook loop {secs['textbook'] / 3600:.1f} h")
        print(f"  by family, minutes: bundles / before bundles / one configuration per bundle, and the bundles' "
              f"utilisation (model FLOPs / wall time / matmul peak, {peak.value / 1e9:.0f} GFLOP/s so far): "
              + ", ".join(
                  f"{fam} {mine[fam] / 60:.1f} / {before[fam] / 60:.1f} ({before[fam] / mine[fam]:.2f}x) / "
                  f"{alone[fam] / 60:.1f} ({alone[fam] / mine[fam]:.2f}x) at {rate[fam] / peak.value:.0%}"
                  for fam in mine), flush=True)
        print("  the hybrid families (beyond the paper), bundled as the sweep bundles them: " + ", ".join(
            f"{fam} {seconds / 60:.1f} min ({flops[fam] / seconds / peak.value:.0%} utilisation)"
            for fam, seconds in hybrids.items()) + f"; together {sum(hybrids.values()) / total:.1%} on top of this "
              f"dataset's paper families (the target, at most {TARGETS['hybrid families, added quick training']:.0%}, "
              f"is on the profile: the datasets pooled)", flush=True)
        speed = frontier_speed(name, peak.value)
        results[name]["frontier evaluation vs one at a time"] = min(one / st for st, one, *_ in speed.values())
        print("frontier variants on the test split: " + ", ".join(
            f"{label} {n} variants as the frontier evaluates them {st:.1f} s vs one at a time {one:.1f} s "
            f"({one / st:.1f}x; one at a time at {util:.0%} of the matmul peak)"
            for label, (st, one, n, util) in speed.items()), flush=True)
        print("component variants on the test split: " + ", ".join(
            f"{label} {n} variants sharing the float model's layers {st:.1f} s vs one at a time {one:.1f} s "
            f"({one / st:.1f}x)" for label, (st, one, n) in sharing_speed(name).items()), flush=True)
        print("quantization-aware fine-tuning, an epoch of the recovery grid: " + ", ".join(
            f"{label} {n} variants, {size} per stack, {st:.1f} s vs one at a time {one:.1f} s ({one / st:.1f}x)"
            for label, (st, one, n, size) in finetune_speed(name).items()), flush=True)
        ours, theirs = compress_speed(name)
        print(f"pruning and sizing the 35 variants of a 4x500 DNN: {ours:.1f} s as the frontier does (kthvalue "
              f"selection, bytes counted) vs {theirs:.1f} s with torch's topk L1Unstructured and the packed bytes' "
              f"length ({theirs / ours:.1f}x)\n", flush=True)


def report(args, peak: common.Peak, results: dict, achieved: dict) -> None:
    """The closing sections: memory, the book builds' records and the targets."""
    quick = profiles.get("quick")
    rss = largest_task_peak_rss(args.datasets[-1])
    print(f"peak memory of the quick profile's largest bundle ({args.datasets[-1]}): {rss / 2**30:.2f} GiB per worker")
    book, empty = book_record(), book_record(pipeline.EMPTY_STORE_RECORD)
    peak.read()
    print(f"fp32 matmul peak readings: {peak.text()}; every utilisation below is over the largest")
    for name, flops in achieved.items():
        results[name].update({label: f / peak.value for label, f in flops.items()})
    overall = {k: min(r[k] for r in results.values()) for k in next(iter(results.values()))}  # the worst dataset
    hybrid, paper = (sum(r[k] for r in results.values()) for k in ("hybrid seconds", "paper families' seconds"))
    overall["hybrid families, added quick training"] = hybrid / paper  # of the quick profile, its datasets pooled
    if book and book.get("profile") == "quick":
        print(f"last book build: {built(book)}")
        if book.get("runs_trained") == 0 and book.get("tables") and book.get("tables_computed") == book["tables"]:
            overall["quick book rebuild on a trained store, min"] = book["seconds"] / 60  # every table computed
        if book.get("tables"):
            print(f"  it computed {book['tables_computed']} of the study's {book['tables']} analysis tables and "
                  f"reused the rest; where its wall time went: {spent(book)}")
        smallest = {}  # the chapter, and the frontier table the build computed ahead of it
        for t in book["notebooks"]:
            if t["chapter"] in ("smallest", "frontier table"):
                smallest[t["dataset"]] = smallest.get(t["dataset"], 0.0) + t["seconds"] / 60
        if smallest:  # `parallel` datasets' chapters (or tables) run at once: each adds its time / parallel
            overall["frontier chapter, min added per dataset"] = max(smallest.values()) / book.get("parallel", 1)
            print("  its smallest-model chapters with their frontier tables: " + ", ".join(f"{d} {m:.1f} min" for d, m in smallest.items()))
            print(phases_why())
    if racing_saving() is not None:
        overall["frontier racing, fewer image-evaluations"] = racing_saving()
        print(racing_why())
    if empty and empty.get("profile") == "quick":
        overall["quick book from an empty store, min"] = empty["seconds"] / 60
        print(f"last book build from an empty store: {built(empty)}\n  where its wall time went: {spent(empty)}")
        print(why_missed(empty, quick, peak.value, TARGETS["quick book from an empty store, min"]))
    overall["tables recomputed after a docstring edit"] = reworded_recomputes()
    overall.update(findings_targets())
    print("\n== targets (worst dataset) ==")
    for label, target in TARGETS.items():
        value = overall.get(label)
        if value is None and label.startswith("bf16"):
            print(f"{label:40s} {'-':>8s} (target {target:g}): not measured (this CPU has no bfloat16 "
                  f"instructions: fp32 stays the default; the per-model bf16 column shows what it costs here)")
            continue
        if value is None:
            how = ("the quick book, then make findings" if label in FINDINGS_TARGETS else
                   "the quick book from an empty store" if "empty" in label else
                   "the quick book on a trained store after a change to the analyses" if "rebuild" in label else
                   "the quick book" + (", then make phases" if "racing" in label else ""))
            print(f"{label:40s} {'-':>8s} (target {target:g}): not measured (build {how})")
            continue
        met = value <= target if label in LOWER_IS_BETTER else value >= target
        print(f"{label:40s} {value:8.2f} (target {target:g}): {'met' if met else 'missed'}")


if __name__ == "__main__":
    sys.exit(main())
