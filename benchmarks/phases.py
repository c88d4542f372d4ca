"""Where the smallest-model chapter's time goes: each phase of ``notebooks/smallest.py`` timed on a built store.

    make phases DATASET=cifar10     # writes benchmarks/phases-latest.txt; or:
    python benchmarks/phases.py --dataset cifar10 [--results results] [--threads 1]

Times, for one dataset of the quick study, what the chapter computes in order: the post-training variants of every
chosen run, raced on the validation split (by family; it prints what racing saved), the quantization-aware
fine-tuning of the frontier's owners, the whole test split of the reported variants, and the component sensitivity of
the representatives; nothing is saved. One thread by default, as the book runs two datasets' chapters at once on two
cores. Beside each phase's time it prints its model arithmetic (FLOPs counted exactly by torch.utils.flop_counter:
per image, times the images and variants each phase evaluates or trains dense, as it does; component sensitivity's in
a second, untimed pass, as it runs), that arithmetic's time at the matmul peak of the same thread count, and the
utilisation; then what share of the peak the chapter's target (``CHAPTER_TARGET_S`` on one core) would need. To
compare two commits, run it from both checkouts at the same time (one core each, the same machine state): the ratio
of their totals is the change, free of the machine's drift between builds. Never part of the tests: timings are not
assertions.
"""
from __future__ import annotations

import collections
import sys
import time

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from minarch_core.analyses import components, frontier, recovery
from minarch_core.engine import train

import common
from speed import TARGETS

PARALLEL = 2  # datasets whose chapters the quick book executes at once on 2 cores (make book's WORKERS)
# the minutes the chapter may add per dataset, on one core: each adds its time / PARALLEL to the book's wall
CHAPTER_TARGET_S = TARGETS["frontier chapter, min added per dataset"] * 60 * PARALLEL


def forward(run, images: int, variants: int = 1) -> float:
    """FLOPs of evaluating ``variants`` weight sets of ``run``'s model on ``images`` images."""
    return variants * images * common.per_image(run.config.dataset, run.config.family, run.config.arch)[1]


def main(argv=None):
    parser = common.store_parser(__doc__)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ch, grid, runs = common.frontier_runs(args, "phases.py")
    peak = common.Peak()
    peak.read()
    sizes = train.load_data(runs[0].config, ch.device, ch.data_root)
    n_train, n_val, n_test = len(sizes.train), len(sizes.val), len(sizes.test)
    seconds, flops, frames = collections.Counter(), collections.Counter(), []
    start = time.perf_counter()
    by_run = {run.run_id: run for run in runs}
    for family in dict.fromkeys(run.config.family for run in runs):  # progress on stderr, the table on stdout
        t = time.perf_counter()
        frames.append(frontier.race([r for r in runs if r.config.family == family], grid.frontier, **ch.where))
        phase = f"post-training variants, {family}"
        seconds[phase] += time.perf_counter() - t
        flops[phase] += sum(forward(by_run[r.run_id], r.val_images) for r in frames[-1].itertuples())
    post = pd.concat(frames, ignore_index=True)
    raced, whole = post.val_images.sum(), len(post) * n_val
    tuned = ch.store.runs_of(frontier.owners(post).drop_duplicates("run_id"))
    t = time.perf_counter()
    aware, _ = recovery.measure(tuned, grid.recovery, **ch.where)
    phase, variants = "quantization-aware fine-tuning", len(frontier.pairs(grid.recovery))
    seconds[phase] = time.perf_counter() - t
    for run in tuned:  # each variant's training steps, then its validation and test splits
        step = common.per_image(run.config.dataset, run.config.family, run.config.arch)[0]
        flops[phase] += variants * grid.recovery.epochs * n_train * step + forward(run, n_val + n_test, variants)
    t = time.perf_counter()
    table = pd.concat([post, aware], ignore_index=True)
    done = frontier.complete(table, ch.store, frontier.reported(table), **ch.where)
    phase = "whole test split of the reported"
    seconds[phase] = time.perf_counter() - t
    measured = done[table.test_acc.isna() & done.test_acc.notna()].run_id.value_counts()
    flops[phase] = sum(forward(run, n_test, measured[run.run_id]) for run in runs if run.run_id in measured)
    t = time.perf_counter()
    representatives = ch.store.runs_of(ch.ask("representatives"))
    components.table(representatives, grid.components, **ch.where)
    phase = "component sensitivity"
    seconds[phase] = time.perf_counter() - t
    total = time.perf_counter() - start
    peak.read()
    with FlopCounterMode(display=False) as counted:  # again, counted as it runs (its shared layers run once)
        components.table(representatives, grid.components, **ch.where)  # untimed: the counter's overhead is large here
    flops[phase] = counted.get_total_flops()
    print(f"minarch benchmarks/phases.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {common.commit()}, "
          f"{args.dataset}, {args.threads} thread(s): {len(runs)} runs, {len(tuned)} fine-tuned")
    print(f"  fp32 matmul peak (4096x4096 torch.mm, {args.threads} thread(s)), read before and after, the larger: "
          f"{peak.value / 1e9:.1f} GFLOP/s")
    print(f"  {'phase':40s} {'wall':>9s}  {'model arithmetic':>16s}  {'at the peak':>11s}  utilisation")
    for phase in [*seconds, "total"]:
        s, f = (total, sum(flops.values())) if phase == "total" else (seconds[phase], flops[phase])
        print(f"  {phase:40s} {s:7.1f} s  {f / 1e9:10.0f} GFLOP  {f / peak.value:9.1f} s  {f / s / peak.value:6.0%}")
    print(f"  racing: {raced:,} of the {whole:,} validation image-evaluations that measuring every variant on the "
          f"whole split takes ({whole / raced:.2f}x fewer); {int(post.groupby(frontier.KEYS).finished.all().sum()):,} "
          f"of {post.groupby(frontier.KEYS).ngroups:,} variants finished")
    print(why(seconds, flops, peak.value, total))
    return 0


def why(seconds, flops, peak: float, total: float) -> str:
    """What the chapter's target needs of the matmul peak over the whole chapter, beside what each phase reaches."""
    need, now = sum(flops.values()) / peak / CHAPTER_TARGET_S, sum(flops.values()) / peak / total
    below = sorted((flops[p] / seconds[p] / peak, p) for p in seconds if flops[p] / seconds[p] / peak < need)
    return (f"  the target, {CHAPTER_TARGET_S / 60:g} min on one core ({total / CHAPTER_TARGET_S:.1f}x less than now), "
            f"needs {need:.1%} of the matmul peak over the whole chapter, against {now:.1%} now; these phases run "
            "below that share: " + ", ".join(f"{p} {u:.1%}" for u, p in below))


if __name__ == "__main__":
    sys.exit(main())
