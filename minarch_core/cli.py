"""The ``minarch`` command: sweeps, single chapters and the whole book."""
from __future__ import annotations

import argparse
import functools
import sys

import pandas as pd

from .analyses import design, frontier, tables
from .book.parameters import CHAPTERS, PARAMETERS, check
from .engine import data, models, profiles, settings, sweep
from .engine.config import TRAIN_PRECISIONS
from .engine.errors import ConfigError, MinarchError
from .engine.store import Store


def main(argv=None) -> int:
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--data")
    settings.use_data_root(early.parse_known_args(argv)[0].data)  # so that its own datasets are names to choose
    args = build_parser().parse_args(argv)
    settings.keep_freed_memory()  # a sweep in this process, or recommend measuring a test split
    try:
        return {"sweep": _sweep, "book": _book, "chapter": _chapter, "recommend": _recommend,
                "export": _export, "inspect": _inspect, "table": _table}[args.command](args)
    except MinarchError as err:
        print(f"minarch: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minarch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    shared = argparse.ArgumentParser(add_help=False)  # the options of every command that trains or reads runs
    shared.add_argument("--profile", default="quick", choices=list(profiles.PROFILES),
                        help="size of the study: smoke (CI, seconds), quick (default), paper (full grids, 30 seeds)")
    shared.add_argument("--device", default=None,
                        help="auto (CUDA when present), cpu, cuda or cuda:N [MINARCH_DEVICE, default auto]")
    shared.add_argument("--results", default=None,
                        help="run store folder [MINARCH_RESULTS, default results/ of the project root]")
    shared.add_argument("--data", default=None, help="data root [MINARCH_DATA, default data/ of the project root]")
    s = commands.add_parser(
        "sweep", parents=[shared], help="train every run of a profile's grids on one dataset (stored runs are reused)",
        description="Train every run of a profile's grids on a dataset, reusing what the run store already holds, "
                    "then (with every grid, on a profile with a design) the runs its design adds where a minimal size "
                    "is still open (minarch_core/analyses/design.py), and print one row per configuration (seeds "
                    "pooled). Interrupt it at any time: run it again and only the missing runs are trained.")
    s.add_argument("--dataset", required=True, choices=data.available(), help="the dataset to train on")
    s.add_argument("--family", action="append", choices=profiles.grid_names(), dest="grids",
                   help="grid to sweep, repeatable: shapes (Phase-1 DNN shapes), dnn (square DNNs), or a family's "
                        "own grid (default: all of the profile's grids)")
    for name in ("seeds", "epochs", "train_per_class"):
        _option(s, name, "(overrides the profile)")
    s.add_argument("--full-data", action="store_true", help="train on the whole training split")
    s.add_argument("--train-precision", choices=list(TRAIN_PRECISIONS), default=None,
                   help="the training arithmetic: fp32 (the reference) or bf16 autocast (weights, optimiser and "
                        "final accuracies stay fp32; part of each run's id) [default: the profile's]")
    s.add_argument("--executor", default="serial", choices=("serial", "process", "dask"),
                   help="serial (in this process), process (a local process pool), dask (a Dask cluster)")
    s.add_argument("--workers", type=PARAMETERS["workers"].parse,
                   help="processes for --executor process, or LocalCluster workers for dask (1..256)")
    s.add_argument("--scheduler", help="address of a running Dask scheduler (with --executor dask); without it a "
                                       "LocalCluster is started on this machine")
    s.add_argument("--bundle-memory", type=float, default=None,
                   help="GiB of training state one bundle of runs (trained as one program) may take "
                        f"[MINARCH_BUNDLE_MEMORY, default {settings.BUNDLE_MEMORY_GIB:g}]")
    s.add_argument("--csv", default=None, help="also write the full per-run table to this CSV file")
    s.add_argument("--dry-run", action="store_true", help="count the runs, train nothing")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    b = commands.add_parser(
        "book", parents=[shared], help="execute every chapter with papermill and build the HTML book",
        description="Execute every chapter notebook with papermill (sweep, regimes, pruning, quantization, smallest "
                    "model per dataset, then findings and reproducing) into book/, then build _build/html with "
                    "Jupyter Book. Runs already in the store are not trained again.")
    b.add_argument("--datasets", default=",".join(data.DATASETS), help="comma-separated datasets (default: all)")
    _option(b, "workers", "", default=1)
    for name in ("seeds", "epochs", "train_per_class"):
        _option(b, name, "(overrides the profile in every chapter)")
    b.add_argument("--no-html", action="store_true", help="execute the notebooks only, do not build the HTML")
    b.add_argument("--log", action="store_true", help="stream each notebook's output while it runs")

    r = commands.add_parser(
        "recommend", parents=[shared], help="the smallest stored model, in bytes, that reaches an accuracy",
        description="Search a study's compression frontier (every stable model pruned and quantized, sized by its "
                    "real encoding) for the smallest variant whose validation accuracy reaches the target with the "
                    "given confidence over seeds; print it with its test accuracy (measured now, and kept, when the "
                    "chapter did not report that variant). The frontier table is the one the 'smallest' chapter "
                    "shows; on a store where only training ran, it is computed first (with the tables it reads).")
    _question(r)

    e = commands.add_parser(
        "export", parents=[shared], help="write recommend's answer as model.onnx, model.minarch and a card",
        description="Take recommend's answer home: one seed of the chosen variant (the lower median of its seeds' "
                    "validation accuracies) written to --out as model.onnx (int8 initialisers with "
                    "DequantizeLinear at 8 bits or fewer), model.minarch (the packed bytes the frontier counts, "
                    "behind a header; minarch inspect reads it) and card.json / card.md. Nothing is written when "
                    "nothing reaches the target.")
    _question(e)
    e.add_argument("--out", required=True, help="the folder to write (must not exist, or be empty)")
    e.add_argument("--force", action="store_true", help="write into a folder that holds files, replacing ours")
    i = commands.add_parser("inspect", help="the layout of a model.minarch file, tensor by tensor",
                            description="Read a model.minarch file (minarch export) and print its header and, per "
                                        "tensor, its values (bits or float type), layout, kept values and bytes.")
    i.add_argument("file", help="the model.minarch file")

    t = commands.add_parser(
        "table", parents=[shared], help="an analysis table of a study, computed if missing",
        description="Print (or write as CSV) one analysis table of a study and dataset: the stored one while what it "
                    "was computed from is unchanged, else computed now, with the tables it reads (minarch_core/"
                    "analyses/tables.py). Needs the study's runs trained (minarch sweep, or make book).")
    t.add_argument("name", choices=list(tables.TABLES), help="the table")
    t.add_argument("--dataset", required=True, action="append", choices=data.available(),
                   help="the dataset; repeated for a table across datasets (" + ", ".join(
                       name for name, spec in tables.TABLES.items() if spec.across) + ")")
    for name in ("seeds", "epochs", "train_per_class"):
        _option(t, name, "(the study's override)")
    t.add_argument("--csv", default=None, help="write the whole table to this CSV file instead of printing it")

    c = commands.add_parser(
        "chapter", help="re-run one chapter notebook with papermill",
        description="Execute one chapter notebook (from notebooks/<name>.py) with papermill parameters into "
                    "book/<dataset>/<name>.ipynb, or into --output.")
    c.add_argument("name", choices=list(CHAPTERS), help="the chapter: " + ", ".join(
        f"{name} ({'per dataset' if spec.per_dataset else 'once per book'})" for name, spec in CHAPTERS.items()))
    c.add_argument("--dataset", default="mnist", choices=data.available(), help="the dataset of the chapter")
    c.add_argument("--profile", default="quick", choices=list(profiles.PROFILES), help="size of the study")
    c.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="another papermill parameter, e.g. -p seeds 5 -p workers 2 (repeatable)")
    c.add_argument("--output", default=None, help="where to write the executed notebook")
    return parser


def _option(parser, name: str, context: str, default=None) -> None:
    """A command-line option from a parameter's record: the same type, range and help as in the notebooks."""
    p = PARAMETERS[name]
    parser.add_argument(f"--{name.replace('_', '-')}", type=p.parse, default=default,
                        help=" ".join(filter(None, (p.help, context))) + f": {p.allowed()}")


def _sweep(args) -> int:
    profile = profiles.study(args.profile, seeds=args.seeds, epochs=args.epochs, train_per_class=args.train_per_class)
    if args.full_data:
        profile = profile.replace(train_per_class=None)
    if args.train_precision:
        profile = profile.replace(train_precision=args.train_precision)
    configs = profile.configs(args.dataset, args.grids)
    store = Store(args.results)
    limits = sweep.Limits(memory=settings.bundle_memory(args.bundle_memory))
    if args.dry_run:
        todo = [c for c in configs if store.get(c) is None]
        print(f"{len(configs)} runs, {len(todo)} not yet in {store.root}, to train as "
              f"{len(sweep.bundles(todo, args.device, limits))} bundles")
        return 0
    with _executor(args) as executor:
        train = functools.partial(sweep.run, store=store, executor=executor, device=args.device, data_root=args.data,
                                  limits=limits, progress=not args.quiet)
        table = train(configs)
        if profile.design is not None and not args.grids:  # the design reads every family of the study
            design.train(profile, [args.dataset], store, train)
            table = sweep.run(configs + design.plan(profile, args.dataset, store).added, store, progress=False)
    if args.csv:
        table.to_csv(args.csv, index=False)
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.precision", 4):
        print(sweep.overview(table).to_string(index=False))
    return 0


def _book(args) -> int:
    from .book import pipeline
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    out = pipeline.build(args.profile, datasets, workers=args.workers, device=args.device, results=args.results,
                         data_root=args.data, html=not args.no_html, log=args.log, seeds=args.seeds,
                         epochs=args.epochs, train_per_class=args.train_per_class)
    print(f"book: {out / 'index.html' if not args.no_html else out}")
    return 0


def _question(parser) -> None:
    """recommend's question (and export's): the dataset, the target and its limits, the study's overrides."""
    parser.add_argument("--dataset", required=True, choices=data.available(), help="the dataset")
    for name in ("min_accuracy", "confidence", "max_bytes"):
        p = frontier.ASK[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=p.parse, default=p.default,
                            required=p.default is None and not p.optional, help=f"{p.help}: {p.allowed()}")
    parser.add_argument("--family", default=None, choices=list(models.FAMILIES), help="only this family")
    for name in ("seeds", "epochs", "train_per_class"):
        _option(parser, name, "(the study's override, as when it was built)")


def _chapter(args) -> int:
    from .book import pipeline
    spec = CHAPTERS[args.name]
    params = {k: v for k, v in (("profile", args.profile), ("dataset", args.dataset)) if k in spec.parameters}
    params.update({name: _value(value) for name, value in args.parameter})
    for name, value in params.items():
        if name not in spec.parameters:
            raise ConfigError(f"chapter {spec.name!r} takes no parameter {name!r}: it takes {list(spec.parameters)}")
        check(name, value, "parameter")
    folder = pipeline.ROOT / "book" / (params["dataset"] if spec.per_dataset else "")
    output = args.output or folder / f"{args.name}.ipynb"
    seconds = pipeline.execute(args.name, output, params, log=True)
    print(f"{output} executed in {seconds:.1f} s")
    return 0


def _where(args, dataset) -> tables.Where:
    study = profiles.study(args.profile, seeds=args.seeds, epochs=args.epochs, train_per_class=args.train_per_class)
    return tables.Where(Store(args.results), study, dataset, str(settings.device(args.device)),
                        settings.data_root(args.data))


def _table(args) -> int:
    datasets = tuple(dict.fromkeys(args.dataset))
    frame = tables.get(args.name, _where(args, datasets[0] if len(datasets) == 1 else datasets))
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"{args.name} of {', '.join(datasets)}: {len(frame):,} rows written to {args.csv}")
    else:
        with pd.option_context("display.width", 120, "display.max_columns", 12):
            print(frame)
    return 0


def _recommend(args) -> int:
    answer = tables.recommend(_where(args, args.dataset), args.min_accuracy, args.family, args.max_bytes,
                              args.confidence)
    overrides = "".join(f" --{k.replace('_', '-')} {v}" for k, v in (("seeds", args.seeds), ("epochs", args.epochs),
                                                                     ("train_per_class", args.train_per_class)) if v)
    print("\n".join(answer.lines(args.dataset, args.profile, overrides)))
    return 0 if answer.met else 1


def _export(args) -> int:
    from .analyses import export
    done, answer = export.export(_where(args, args.dataset), args.min_accuracy, args.out, args.family, args.max_bytes,
                                 args.confidence, args.force)
    if done is None:
        overrides = "".join(f" --{k.replace('_', '-')} {v}" for k, v in (
            ("seeds", args.seeds), ("epochs", args.epochs), ("train_per_class", args.train_per_class)) if v)
        print("\n".join(answer.lines(args.dataset, args.profile, overrides)) + "\nnothing written")
        return 1
    c = done.card
    print(f"{c['model']}, {c['sparsity']:.0%} pruned, {c['precision']} ({c['recovery']}), seed {c['seed']}: "
          f"{c['payload_bytes']:,} payload bytes; written to {done.folder}: {', '.join(export.FILES)}")
    return 0


def _inspect(args) -> int:
    from . import packed
    from .analyses import export
    try:
        print("\n".join(export.inspect(args.file)))
    except (packed.FormatError, OSError) as err:
        raise ConfigError(f"cannot read {args.file}: {err}") from None
    return 0


def _value(text: str):
    """A parameter value as papermill's -p reads it: None, True/False, int, float, else the string."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


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
