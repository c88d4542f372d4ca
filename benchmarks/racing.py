"""What racing can save on one dataset, and what bounds it: stopping rules replayed on every variant measured whole.

    make racing DATASET=cifar10     # writes benchmarks/racing-latest.txt; or:
    python benchmarks/racing.py --dataset cifar10 [--results results]

Measures every post-training variant of the frontier's chosen runs (the quick study's) on the whole validation split,
image by image in the racing order, as ``frontier.race`` builds them; then replays stopping rules on those hits, so
that each rule's savings (image-evaluations, against measuring every variant whole) and its cost (how much accuracy
the Pareto set drawn from its finishers loses at any size, against the whole-split Pareto set) come from the same
measurements:

- the book's rule (``racing``: tolerance 0), which ``frontier.race`` applies; its savings here equal the race's;
- the same test against every no-larger variant, not only the ``racing.CANDIDATES`` most accurate so far (the
  Bonferroni correction already pays for every pair), to show whether the candidates limit it;
- positive tolerances, which stop a variant that a no-larger one matches within them (a share of accuracy);
- the ceiling: an oracle that knows the whole-split Pareto set and stops every other variant after the first stage
  (``oracle``). No valid test reaches it; it bounds what any stage-wise rule could save.

Never part of the tests: timings are not assertions.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from minarch_core.analyses import frontier, racing
from minarch_core.analyses.frontier.measure import _built
from minarch_core.engine import data, train

import common

TOLERANCES = (0.0, 0.005, 0.01)


def hits(runs, grid, where) -> dict:
    """Per family: each variant's (configuration, sparsity, precision) -> (its seeds' largest bytes, each
    validation image's fraction of right seeds, in the racing order)."""
    seeds: dict = {}
    for run in runs:
        dataset = train.load_data(run.config, where["device"], where["data_root"])
        order = racing.order(len(dataset.val))
        split = data.Split(dataset.val.x[order], dataset.val.y[order])
        rows, states = _built(run, dataset, grid)
        _, right = train.hits(run.model(dataset), states, split, train.LOSSES[run.config.loss])
        for row, r in zip(rows, right):
            key = (run.config.replace(seed=0).run_id, row["sparsity"], row["precision"])
            entry = seeds.setdefault(run.config.family, {}).setdefault(key, [0, []])
            entry[0] = max(entry[0], row["size_bytes"])
            entry[1].append(r)
    return {family: (np.array([size for size, _ in v.values()]),
                     torch.stack([torch.stack(r).float().mean(0) for _, r in v.values()]))
            for family, v in seeds.items()}


def replay(sizes: np.ndarray, p: torch.Tensor, tolerance: float = racing.TOLERANCE, candidates: int | None = None,
           oracle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The images each variant (rows of ``p``: per image, the fraction of its seeds right, in the racing order) is
    measured on under a stopping rule, and which finish: ``racing.stopped`` after each stage as ``frontier.race``
    applies it (``candidates``: how many no-larger variants each is tested against; None: the book's), or with
    ``oracle`` every variant off the whole-split Pareto set stopped after the first stage."""
    n = p.shape[1]
    measured, active = np.zeros(len(sizes), dtype=int), np.ones(len(sizes), dtype=bool)
    best = frontier.front(sizes, p.mean(1).numpy())
    saved, racing.CANDIDATES = racing.CANDIDATES, candidates or racing.CANDIDATES
    try:
        for end in racing.stages(n):
            measured[active] = end
            if end < n:
                a = np.flatnonzero(active)
                stop = ~best[a] if oracle else racing.stopped(p[a, :end], sizes[a], n, len(sizes), tolerance)
                active[a[stop]] = False
    finally:
        racing.CANDIDATES = saved
    return measured, active


def lost(sizes: np.ndarray, accuracy: np.ndarray, finished: np.ndarray) -> float:
    """The most accuracy the Pareto set of the ``finished`` variants loses at any size against the whole set's."""
    worst = 0.0
    for v in np.flatnonzero(frontier.front(sizes, accuracy)):
        kept = finished & (sizes <= sizes[v])
        worst = max(worst, accuracy[v] - (accuracy[kept].max() if kept.any() else 0.0))
    return worst


def main(argv=None):
    parser = common.store_parser(__doc__)
    args = parser.parse_args(argv)
    ch, grid, runs = common.frontier_runs(args, "racing.py")
    start = time.perf_counter()
    families = hits(runs, grid.frontier, ch.where)
    seconds = time.perf_counter() - start
    variants = sum(len(s) for s, _ in families.values())
    print(f"minarch benchmarks/racing.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {common.commit()}, "
          f"{args.dataset}: {len(runs)} runs, {variants:,} variants (a configuration's seeds pooled), every one "
          f"measured on the whole validation split in {seconds:.0f} s")
    rules = [(f"the book's rule (tolerance {racing.TOLERANCE:g})", {}),
             ("every no-larger variant tested", {"candidates": 10**9}),
             *((f"tolerance {t:.1%}", {"tolerance": t}) for t in TOLERANCES if t > racing.TOLERANCE),
             ("oracle: knows the Pareto set", {"oracle": True})]
    print(f"  {'rule':34s} {'fewer':>6s}  finished  accuracy lost at a size")
    for name, options in rules:
        images = whole = finished = 0
        worst = 0.0
        for sizes, p in families.values():
            measured, done = replay(sizes, p, **options)
            images, whole, finished = images + measured.sum(), whole + p.numel(), finished + done.sum()
            worst = max(worst, lost(sizes, p.mean(1).numpy(), done))
        print(f"  {name:34s} {whole / images:5.2f}x  {finished:8,}  {worst:.2%}")
    fronts = sum(frontier.front(s, p.mean(1).numpy()).sum() for s, p in families.values())
    print(f"  {fronts:,} of the {variants:,} variants are on their family's whole-split Pareto set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
