"""Whole sweeps timed as a user runs them: ``minarch sweep --dataset D --profile quick --family F --executor process
--workers 1`` into an empty store, this engine and the engine before bundles (commit ``speed.BEFORE``, from a git
worktree, its own CLI) back to back on the same machine, one family per dataset. ``speed.py`` trains every bundle for
two epochs and projects to the profile's; this is the check that its projection holds for what users wait for.

Run it on an idle machine (``make sweeps``, about 30 min on 2 cores); it prints one line per sweep and the ratios.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from speed import BEFORE

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = (("mnist", "cnn"), ("fashion_mnist", "vit"), ("cifar10", "dnn"))  # one family per dataset


def timed_sweep(tree: Path, dataset: str, family: str, store: Path) -> float:
    """Seconds of ``minarch sweep`` of the engine in ``tree`` for one family of the quick profile, into ``store``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "MINARCH_PROGRESS": "0"}
    command = [sys.executable, "-m", "minarch_core.cli", "sweep", "--dataset", dataset, "--profile", "quick",
               "--family", family, "--executor", "process", "--workers", "1", "--results", str(store), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the sweep of {tree.name} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", nargs="+", default=[f"{d}:{f}" for d, f in SWEEPS],
                        help="dataset:family pairs (default: " + " ".join(f"{d}:{f}" for d, f in SWEEPS) + ")")
    args = parser.parse_args(argv)
    print(f"minarch benchmarks/sweeps.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {common.commit()}, "
          f"{os.cpu_count()} cores; whole quick sweeps, --executor process --workers 1, into empty stores")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="minarch-sweeps-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(before), BEFORE], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for pair in args.sweeps:
                dataset, family = pair.split(":")
                now = timed_sweep(ROOT, dataset, family, Path(tmp) / f"now-{dataset}")
                old = timed_sweep(before, dataset, family, Path(tmp) / f"before-{dataset}")
                ratios.append(old / now)
                print(f"{dataset} {family}: this engine {now:.1f} s, the engine before bundles ({BEFORE}) "
                      f"{old:.1f} s: {old / now:.2f}x", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    print(f"worst sweep: {min(ratios):.2f}x over the engine before bundles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
