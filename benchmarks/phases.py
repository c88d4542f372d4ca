"""Where the smallest-model chapter's time goes: each phase of ``notebooks/smallest.py`` timed on a built store.

    python benchmarks/phases.py --dataset cifar10 [--results results] [--threads 1]

Times, for one dataset of the quick study, what the chapter computes in order: the post-training variants of every
chosen run (by family), the quantization-aware fine-tuning of the frontier's owners, the whole test split of the
reported variants, and the component sensitivity of the representatives; nothing is saved. One thread by default,
as the book runs two datasets' chapters at once on two cores. To compare two commits, run it from both checkouts at
the same time (one core each, the same machine state): the ratio of their totals is the change, free of the
machine's drift between builds. Never part of the tests: timings are not assertions.
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time

import pandas as pd
import torch

from minarch_core.analyses import components, frontier, recovery
from minarch_core.analyses.common import run_columns
from minarch_core.book import chapter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--results", default=None, help="the built store (default: MINARCH_RESULTS or ./results)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    ch = chapter.from_notebook("smallest", {"dataset": args.dataset, "profile": "quick", "seeds": None,
                                            "epochs": None, "train_per_class": None, "device": "cpu",
                                            "results": args.results, "data": None, "workers": 1,
                                            "renderer": "default", "figures": None})
    runs = frontier.chosen_runs(ch.store, ch.load("configurations"), ch.load("runs"))
    seconds, frames = collections.Counter(), []
    start = time.perf_counter()
    for run in runs:
        t = time.perf_counter()
        frames.append(frontier.variants(run, **ch.where).assign(**run_columns(run)))
        seconds[f"post-training variants, {run.config.family}"] += time.perf_counter() - t
    post = pd.concat(frames, ignore_index=True)
    tuned = ch.store.runs_of(frontier.owners(post).drop_duplicates("run_id"))
    t = time.perf_counter()
    aware = frontier.measure(tuned, recovery.variants, progress=False, **ch.where)
    seconds["quantization-aware fine-tuning"] = time.perf_counter() - t
    t = time.perf_counter()
    table = pd.concat([post, aware], ignore_index=True)
    frontier.complete(table, ch.store, frontier.reported(table), progress=False, **ch.where)
    seconds["whole test split of the reported"] = time.perf_counter() - t
    t = time.perf_counter()
    components.table(ch.store.runs_of(ch.load("representatives")), **ch.where)
    seconds["component sensitivity"] = time.perf_counter() - t
    total = time.perf_counter() - start
    print(f"minarch benchmarks/phases.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit or 'unknown'}, "
          f"{args.dataset}, {args.threads} thread(s): {len(runs)} runs, {len(tuned)} fine-tuned")
    for phase, s in seconds.items():
        print(f"  {phase:40s} {s:7.1f} s")
    print(f"  {'total':40s} {total:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
