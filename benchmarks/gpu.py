"""How fast the paper profile trains on one CUDA GPU: measured tasks, utilisation, and the projected full sweep.

    python benchmarks/gpu.py --dataset mnist --budget 360 [--epochs 4] > benchmarks/gpu-latest.txt

Trains a spread sample of the paper profile's configurations of one dataset exactly as its sweep does (all 30
seeds of a configuration stacked in one task, ``train.train_seeds`` on CUDA, full training split), the smallest and
largest of each grid first and then ever finer in between, until the time budget is spent. Each task is timed
(the device synchronised). From those tasks it prints:

1. the GPU's dense matmul peaks (float32 without TF32, which is what the trainer computes, and bfloat16);
2. per task: seconds, model-epochs per second and achieved FLOP/s against the float32 peak;
3. the projected time of the whole paper profile: per grid, seconds per epoch = a + b x FLOPs fitted to the
   measured tasks, applied to every configuration of the grid at the profile's epochs (plus the final evaluation);
   Fashion-MNIST has MNIST's shapes and sizes, CIFAR-10 is priced by the same fit at its own FLOPs (an
   extrapolation in FLOPs, stated as such).

``--epochs`` trains the sampled tasks for fewer epochs than the profile (the cost per epoch is what is measured;
``final_s``, the task's time beyond its epochs, holds its setup and the final whole-split evaluation, and is priced
per FLOP of that evaluation). ``--reproject CSV`` prices the three datasets again from a saved table of tasks, once
as measured and once with all of ``final_s`` counted as training time (an upper bound for tasks whose epoch clock
missed queued GPU work). Never part of the tests: timings are not assertions.
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import sys
import time

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

import common
from minarch_core.engine import data, models, profiles, settings, sweep, train
from minarch_core.engine.config import RunConfig

TARGETS = {"paper profile, three datasets (h)": 1.0, "largest models vs float32 peak": 0.30}


def flops(cfg: RunConfig, n_train: int, n_monitor: int, n_full: int) -> tuple[float, float]:
    """(FLOPs of one epoch: training pass + monitor evaluation, FLOPs of the final whole-split evaluation) of one
    seed."""
    step, fwd = common.per_image(cfg.dataset, cfg.family, cfg.arch)
    return step * n_train + fwd * n_monitor, fwd * n_full


def spread(items: list, k: int) -> list:
    """The items in an order that covers their range first: ends, middle, then quarters, eighths..."""
    order, seen, n = [], set(), len(items)
    for level in range(0, max(1, int(np.ceil(np.log2(max(n, 2))))) + 2):
        parts = 2 ** level
        for j in range(parts + 1):
            i = round(j * (n - 1) / parts)
            if i not in seen:
                seen.add(i)
                order.append(items[i])
    return order[:k] if k else order


def sizes(name: str, profile: profiles.Profile) -> tuple[int, int, int]:
    """(training images, monitor images per epoch, whole-split evaluation images) of one run of ``profile``, from
    the official split sizes (so that a dataset absent from this machine can still be priced; all are balanced
    enough for ``MONITOR_PER_CLASS`` images per class)."""
    spec = data.spec(name)
    if spec.official is None:
        raise SystemExit(f"dataset {name!r} does not declare its official split sizes (DatasetSpec.official)")
    (n_official, n_test), k = spec.official, spec.n_classes
    n_train = (profile.train_per_class or n_official // k - profile.val_per_class) * k  # approximately balanced
    n_val = profile.val_per_class * k
    return n_train, common.monitor_images(n_train, n_val, n_test, k), n_train + n_val + n_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--budget", type=float, default=360, help="seconds of measured tasks")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per sampled task (default: the profile's)")
    parser.add_argument("--csv", default=None, help="write the measured tasks here")
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    parser.add_argument("--workers", type=int, default=1, help="also measure this many worker processes sharing "
                                                                 "the GPU on the smallest sampled tasks")
    parser.add_argument("--reproject", default=None, help="a saved --csv table of tasks: project again, no training")
    parser.add_argument("--commit", default=None, help="the commit measured, where the copy has no current git "
                                                       "history (a lent machine's copy of the working tree)")
    args = parser.parse_args(argv)
    dev = settings.device(args.device)
    print(f"minarch benchmarks/gpu.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {args.commit or common.commit()}")
    print(f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    peak32 = peak16 = float("nan")
    if not args.reproject:
        peak32, peak16 = common.matmul_peak(dev, torch.float32), common.matmul_peak(dev, torch.bfloat16)
        print(f"dense matmul peak (8192^3): float32 (no TF32) {peak32 / 1e12:.1f} TFLOP/s, bfloat16 "
              f"{peak16 / 1e12:.1f} TFLOP/s\n")

    paper = profiles.get("paper")
    epochs = args.epochs or paper.epochs
    n_train, n_monitor, n_full = sizes(args.dataset, paper)
    dataset = data.load(args.dataset, val_per_class=paper.val_per_class, train_per_class=paper.train_per_class,
                        device=dev)
    grids = {}
    for name in paper.grids:
        by_config = {}
        for cfg in paper.configs(args.dataset, [name]):
            by_config.setdefault(cfg.replace(seed=0).run_id, []).append(cfg)
        groups = sorted(by_config.values(), key=lambda g: flops(g[0], n_train, n_monitor, n_full)[0])
        grids[name] = groups
    queue = [(name, g) for order in itertools.zip_longest(*(spread(g, 0) for g in grids.values()))
             for name, g in zip(grids, order) if g is not None]
    if args.reproject:
        import pandas as pd
        queue, loaded = [], pd.read_csv(args.reproject).to_dict("records")
        print(f"re-projected from {args.reproject} ({len(loaded)} tasks of {epochs} epochs), no training here")
    else:
        warm = [c.replace(epochs=1) for c in queue[0][1][:2]]
        train.train_bundle(warm, dataset, dev)  # CUDA context, kernels and allocator warmed outside the timings
    print(f"== paper profile on {args.dataset}: {n_train} training images, {paper.seeds} seeds per task, "
          f"{epochs} epochs per sampled task ==")
    print(f"{'grid':7s} {'model':26s} {'params':>10s} {'seeds':>5s} {'s/epoch':>8s} {'final s':>8s} "
          f"{'model-ep/s':>10s} {'TFLOP/s':>8s} {'of fp32':>7s}")
    rows, tasks, spent = [], [], 0.0
    for name, group in queue:
        if spent >= args.budget:
            break
        cfgs = [c.replace(epochs=epochs) for c in group]
        sync(dev)
        start = time.perf_counter()
        results = train.train_bundle(cfgs, dataset, dev)
        sync(dev)
        total = time.perf_counter() - start
        # the trainer's own clock, from a seed that ran every epoch (a diverged seed's history stops early)
        epoch_s = max(float(r.history.time_s.iloc[-1]) for r in results) * len(cfgs) / epochs
        final_s = max(total - epoch_s * epochs, 0.0)
        f_epoch, f_final = flops(cfgs[0], n_train, n_monitor, n_full)
        achieved = f_epoch * len(cfgs) / epoch_s
        tasks.append([c.to_dict() for c in cfgs])
        rows.append(dict(grid=name, model=models.describe(cfgs[0].family, cfgs[0].arch)["model"],
                         family=cfgs[0].family, params=results[0].n_params, seeds=len(cfgs), epoch_s=epoch_s,
                         final_s=final_s, flops_epoch=f_epoch, flops_final=f_final, tflops=achieved / 1e12))
        spent += total
        print(f"{name:7s} {rows[-1]['model']:26s} {rows[-1]['params']:10,d} {len(cfgs):5d} {epoch_s:8.2f} "
              f"{final_s:8.2f} {len(cfgs) / epoch_s:10.1f} {achieved / 1e12:8.2f} {achieved / peak32:7.0%}",
              flush=True)
    if args.reproject:
        rows = loaded
    measured = {r["grid"] for r in rows}
    if args.csv:  # before any projection, so that the measurements survive whatever follows
        import pandas as pd
        pd.DataFrame(rows).to_csv(args.csv, index=False)

    gain, probe = 1.0, 0.0  # throughput gain of several processes on the tasks up to ``probe`` FLOPs per epoch
    if args.workers > 1 and dev.type == "cuda":
        order = sorted(range(len(rows)), key=lambda i: rows[i]["flops_epoch"])[:2 * args.workers]
        alone = sum(rows[i]["epoch_s"] * epochs + rows[i]["final_s"] for i in order)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            list(pool.map(_warm, [args.dataset] * args.workers))  # contexts and data up before the clock starts
            start = time.perf_counter()
            list(pool.map(_task, [tasks[i] for i in order]))
            together = time.perf_counter() - start
        gain = max(alone / together, 1.0)  # a sweep that gains nothing from workers runs without them
        probe = max(rows[i]["flops_epoch"] * rows[i]["seeds"] for i in order)
        print(f"\n{args.workers} worker processes sharing the GPU trained the {len(order)} smallest sampled tasks in "
              f"{together:.1f} s, against {alone:.1f} s one after another: {alone / together:.1f}x the throughput; the "
              f"projections below apply {gain:.1f}x to the tasks of at most their FLOPs per epoch")

    def project(name: str) -> tuple[float, dict]:
        per_grid = {}
        for grid in grids:
            rs = [r for r in rows if r["grid"] == grid]
            if not rs:
                per_grid[grid] = float("nan")
                continue
            f = np.array([r["flops_epoch"] * r["seeds"] for r in rs])
            t = np.array([r["epoch_s"] for r in rs])
            a, b = common.fit(f, t) if len(rs) > 1 else (0.0, t[0] / f[0])
            final_per_flop = sum(r["final_s"] for r in rs) / sum(r["flops_final"] * r["seeds"] for r in rs)
            secs, by_config = 0.0, {}
            for cfg in paper.configs(name, [grid]):  # this dataset's own configs (the ViT patch follows the image)
                by_config.setdefault(cfg.replace(seed=0).run_id, []).append(cfg)
            for g in by_config.values():
                fe, ff = flops(g[0], *sizes(name, paper))
                batches = -(-len(g) // sweep.SEED_BATCH)
                task = (a + b * fe * len(g) / batches) * paper.epochs + final_per_flop * ff * len(g) / batches
                secs += batches * task / (gain if fe * len(g) / batches <= probe else 1.0)
            per_grid[grid] = secs
        return sum(per_grid.values()), per_grid

    print()
    totals = {}
    for name in ("mnist", "fashion_mnist", "cifar10"):
        total, per_grid = project(name)
        totals[name] = total
        note = "" if name == args.dataset else " (fit on " + args.dataset + ", priced at this dataset's FLOPs)"
        print(f"paper profile of {name}: {len(paper.configs(name))} runs, projected {total / 3600:.2f} h on this GPU"
              f"{note}; " + ", ".join(f"{g} {s / 60:.1f} min" for g, s in per_grid.items()))
    if args.reproject:
        as_measured = sum(totals.values())
        for r in rows:  # the upper bound: every second beyond the epochs' clock counted as training
            full = r["epoch_s"] + r["final_s"] / epochs
            r["tflops"], r["epoch_s"], r["final_s"] = r["tflops"] * r["epoch_s"] / full, full, 0.0
        upper = sum(project(name)[0] for name in ("mnist", "fashion_mnist", "cifar10"))
        print(f"paper profile, three datasets: {as_measured / 3600:.2f} h as measured, at most {upper / 3600:.2f} h with "
              f"all of each task's time beyond its epochs counted as training")
        largest = [max((r for r in rows if r["family"] == f), key=lambda r: r["flops_epoch"], default=None)
                   for f in models.FAMILIES]
        print("largest models counted the same way: " + ", ".join(f"{r['model']} at least {r['tflops']:.1f} TFLOP/s"
                                                                 for r in largest if r))
        return 0
    unmeasured = [g for g in grids if g not in measured]
    if unmeasured:
        print(f"not measured (budget spent first): {unmeasured}; their time is missing from the totals")
    largest = [max((r for r in rows if r["family"] == fam), key=lambda r: r["flops_epoch"], default=None)
               for fam in models.FAMILIES]
    print("\nlargest measured model of each family: " + ", ".join(
        f"{r['model']} {r['tflops']:.1f} TFLOP/s = {r['tflops'] * 1e12 / peak32:.0%} of the float32 peak"
        for r in largest if r))
    dnn = sorted((r for r in rows if r["family"] == "dnn"), key=lambda r: r["flops_epoch"])
    if len(dnn) > 1:
        small, large = dnn[0], dnn[-1]
        print(f"\nwhere the time goes: from {small['model']} to {large['model']} the FLOPs of an epoch grow "
              f"{large['flops_epoch'] / small['flops_epoch']:,.0f}x and its time {large['epoch_s'] / small['epoch_s']:.1f}x"
              f"; the smallest task runs at {small['tflops'] * 1e12 / peak32:.2%} of the float32 peak. Where time "
              f"barely follows FLOPs, steps are bound by per-step overhead (kernel launches), and the lever is one "
              f"launch per step: a CUDA graph of the training step, or torch.compile")
    print("\n== targets ==")
    best = max((r["tflops"] * 1e12 / peak32 for r in largest if r), default=0.0)
    for label, value, target, ok in (
            ("paper profile, three datasets (h)", sum(totals.values()) / 3600, TARGETS[
                "paper profile, three datasets (h)"], sum(totals.values()) / 3600 <= 1.0),
            ("largest models vs float32 peak", best, TARGETS["largest models vs float32 peak"], best >= 0.30)):
        print(f"{label:36s} {value:8.2f} (target {target:g}): {'met' if ok else 'missed'}")
    return 0


def _warm(dataset: str) -> None:
    """A worker's CUDA context and data, made before the concurrency probe's clock starts."""
    torch.ones(1, device="cuda").sum().item()
    profile = profiles.get("paper")
    data.load(dataset, val_per_class=profile.val_per_class, train_per_class=profile.train_per_class, device="cuda")


def _task(cfgs: list[dict]) -> None:
    """One sweep task in a worker process: the seeds of one configuration, trained on CUDA."""
    cfgs = [RunConfig.from_dict(c) for c in cfgs]
    dataset = train.load_data(cfgs[0], "cuda")
    train.train_bundle(cfgs, dataset, "cuda")
    torch.cuda.synchronize()


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


if __name__ == "__main__":
    sys.exit(main())
