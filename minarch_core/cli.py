"""The ``minarch`` command: run a sweep of a profile on a dataset and print its table."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from . import data, profiles, sweep
from .errors import MinarchError
from .store import Store


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _sweep(args)
    except MinarchError as err:
        print(f"minarch: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minarch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser(
        "sweep", help="train every run of a profile's grids on one dataset (stored runs are reused)",
        description="Train every run of a profile's grids on a dataset, reusing what the run store already holds, "
                    "and print one row per configuration (seeds pooled). Interrupt it at any time: run it again "
                    "and only the missing runs are trained.")
    s.add_argument("--dataset", required=True, choices=sorted(data.DATASETS), help="the dataset to train on")
    s.add_argument("--profile", default="quick", choices=list(profiles.PROFILES),
                   help="size of the study: smoke (CI, seconds), quick (default), paper (full grids, 30 seeds)")
    s.add_argument("--family", action="append", choices=profiles.GRIDS, dest="grids",
                   help="grid to sweep, repeatable: shapes (Phase-1 DNN shapes), dnn (square DNNs), cnn, vit "
                        "(default: all of the profile's grids)")
    s.add_argument("--seeds", type=int, help="seeds per configuration (overrides the profile)")
    s.add_argument("--epochs", type=int, help="training epochs (overrides the profile)")
    s.add_argument("--train-per-class", type=int, help="training images per class (overrides the profile)")
    s.add_argument("--full-data", action="store_true", help="train on the whole training split")
    s.add_argument("--executor", default="serial", choices=("serial", "process", "dask"),
                   help="serial (in this process), process (a local process pool), dask (a Dask cluster)")
    s.add_argument("--workers", type=int, help="processes for --executor process, or LocalCluster workers for dask")
    s.add_argument("--scheduler", help="address of a running Dask scheduler (with --executor dask); without it a "
                                       "LocalCluster is started on this machine")
    s.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N [MINARCH_DEVICE]")
    s.add_argument("--results", default=None, help="run store folder [MINARCH_RESULTS, default ./results]")
    s.add_argument("--data", default=None, help="data root [MINARCH_DATA, default ./data]")
    s.add_argument("--csv", default=None, help="also write the full per-run table to this CSV file")
    s.add_argument("--dry-run", action="store_true", help="count the runs, train nothing")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _sweep(args) -> int:
    overrides = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs),
                                   ("train_per_class", args.train_per_class)) if v is not None}
    if args.full_data:
        overrides["train_per_class"] = None
    profile = profiles.get(args.profile).replace(**overrides)
    configs = profile.configs(args.dataset, args.grids)
    store = Store(args.results)
    if args.dry_run:
        todo = sum(store.get(c) is None for c in configs)
        print(f"{len(configs)} runs, {todo} not yet in {store.root}")
        return 0
    with _executor(args) as executor:
        table = sweep.run(configs, store, executor=executor, device=args.device, data_root=args.data,
                          progress=not args.quiet)
    if args.csv:
        table.to_csv(args.csv, index=False)
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.precision", 4):
        print(sweep.overview(table).to_string(index=False))
    return 0


def _executor(args):
    if args.executor == "process":
        return sweep.process_pool(args.workers)
    if args.executor == "dask":
        from distributed import Client, LocalCluster
        client = Client(args.scheduler) if args.scheduler else Client(
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None))
        return _DaskExecutor(client)
    return sweep.SerialExecutor()


class _DaskExecutor:
    """A Dask client's executor that closes the client (and a cluster it started) when the sweep ends."""

    def __init__(self, client):
        self.client = client

    def __enter__(self):
        return self.client.get_executor()

    def __exit__(self, *exc):
        cluster = self.client.cluster
        self.client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
