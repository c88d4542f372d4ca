"""The analysis tables of a study, each a function whose parameters name the tables it reads.

``get("frontier", at)`` returns one dataset's frontier table: stored under the study id and reused while what it was
computed from is unchanged, else computed (the tables it reads first, by the same rule) and stored. A table's
parameters are its inputs (``representatives``, ``runs`` ...), all but the first, ``at`` (a ``Where``: the store,
the study, the dataset and where to compute): a small graph, in the spirit of Hamilton's functions. "Unchanged" is a
fingerprint kept beside each stored table: a hash of the table's name and version, of its code (its function and
the package's definitions it reaches, docstrings and comments stripped: ``reach``), and of its inputs'
fingerprints; the runs table's covers the ids of the runs it reads. So a table is computed again when what computes
it or an input changes, and only then: editing words recomputes nothing.
A table across datasets (``across``: the findings) reads each input of every dataset it is asked of, stacked.
Notebooks and the CLI ask for tables and plot or print them; none computes a table another reads, and
``minarch recommend`` answers on a store where only training ran. The two tables that measure models (``HEAVY``: the
compression table's parts) are what a build computes ahead of its chapters (``compute``), in parallel processes.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import inspect
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..engine import data, progress, sweep
from ..engine.errors import ConfigError
from ..engine.profiles import Profile
from ..engine.store import Store
from . import components as components_, findings as findings_, frontier as frontier_, pruning as pruning_
from . import design as design_
from . import quantization as quantization_, reach, recovery as recovery_, regimes, variants as variants_


@dataclass(frozen=True)
class Where:
    """Which tables (a study's, of one dataset or, for a table across datasets, of several, in a store) and where to
    compute them."""
    store: Store
    study: Profile
    dataset: str | tuple[str, ...]
    device: str | None = None
    data_root: str | Path | None = None

    @property
    def datasets(self) -> tuple[str, ...]:
        return (self.dataset,) if isinstance(self.dataset, str) else tuple(self.dataset)

    def on(self, dataset: str) -> Where:
        """The same study and store, for one ``dataset``."""
        return dataclasses.replace(self, dataset=dataset)

    @property
    def grid(self):
        return self.study.compression

    @property
    def compute(self) -> dict:
        return {"device": self.device, "data_root": self.data_root}


@dataclass(frozen=True)
class Table:
    name: str
    make: Callable
    inputs: tuple[str, ...]
    version: int  # bumped when what the table computes changes in a way the code hash would not show
    across: bool = False  # a table of several datasets: each input is that table of every dataset, stacked


TABLES: dict[str, Table] = {}


def table(version: int = 1, across: bool = False):
    """Register the function as the table of its name, its parameters after ``at`` as its inputs (``across``: of
    the datasets ``at`` names, each input stacked over them)."""
    def register(make):
        inputs = tuple(list(inspect.signature(make).parameters)[1:])
        TABLES[make.__name__] = Table(make.__name__, make, inputs, version, across)
        return make
    return register


def get(name: str, at: Where, _prints: dict | None = None) -> pd.DataFrame:
    """Table ``name`` of ``at``'s study and dataset: the stored one while its fingerprint holds, else computed."""
    prints = {} if _prints is None else _prints  # each fingerprint worked out once per question
    spec, tables = _spec(name), at.store.tables(at.study)
    mine = fingerprint(name, at, prints)
    if tables.fingerprint(at.dataset, name) == mine:
        return tables.load(at.dataset, name)
    if spec.across:
        inputs = [pd.concat([get(i, at.on(d), prints).assign(dataset=d) for d in at.datasets], ignore_index=True)
                  for i in spec.inputs]
    else:
        inputs = [get(i, at, prints) for i in spec.inputs]
    made = spec.make(at, *inputs)
    frame, weights = made if isinstance(made, tuple) else (made, None)  # a table with fine-tuned models: both
    return tables.save(at.dataset, name, frame, mine, weights)


def fingerprint(name: str, at: Where, _prints: dict | None = None) -> str:
    """What table ``name`` of ``at`` is computed from, hashed: its name, version, the code, its inputs' (of every
    dataset, for a table across datasets)."""
    prints = {} if _prints is None else _prints
    spec = _spec(name)
    if not (spec.across or isinstance(at.dataset, str)):
        raise ConfigError(f"{name!r} is a table of one dataset: ask it of one, not of {list(at.datasets)}")
    if (at.dataset, name) not in prints:
        parts = [name, str(spec.version), code(spec.make)]
        if spec.across:
            parts += [*at.datasets, *(fingerprint(i, at.on(d), prints) for d in at.datasets for i in spec.inputs)]
        else:
            parts += [fingerprint(i, at, prints) for i in spec.inputs]
        if not spec.inputs:  # a table read from the store itself: the runs it reads
            parts += _run_ids(at)
        prints[at.dataset, name] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return prints[at.dataset, name]


def code(make: Callable) -> str:
    """A hash of what a table's function computes: itself and the package's code it reaches, words stripped (a
    function from outside the package: its own source)."""
    package = _package()
    if make.__module__ in package.modules:
        return package.digest(make.__module__, make.__name__)
    return hashlib.sha256(inspect.getsource(make).encode()).hexdigest()


@functools.cache
def _package() -> reach.Package:
    return reach.Package(Path(__file__).resolve().parents[1], __package__.split(".")[0])


def recommend(at: Where, min_accuracy: float, family: str | None = None, max_bytes: int | None = None,
              confidence: float = frontier_.ASK["confidence"].default) -> frontier_.Answer:
    """``frontier.recommend`` on the study's frontier table of the dataset (computed first if the store holds only
    trained runs). A chosen variant that the book did not report has no whole-test accuracy yet: it is measured now
    (``frontier.complete``) and kept in the stored table, under the same fingerprint, so that every answer reports
    it."""
    table = get("frontier", at)
    answer = frontier_.recommend(table, min_accuracy, family, max_bytes, confidence)
    if pd.isna(answer.row.test_mean):
        table = frontier_.complete(table, at.store, answer.row.to_frame().T, progress=False, **at.compute)
        amend("frontier", at, table)
        answer = frontier_.recommend(table, min_accuracy, family, max_bytes, confidence)
    return answer


def amend(name: str, at: Where, frame: pd.DataFrame) -> None:
    """Store ``frame`` as table ``name`` under its current fingerprint (what it was computed from is unchanged: it
    only holds more, such as a test accuracy measured on demand), and mark every stored table computed from it out
    of date, so that each is made again from the amended one when next asked for."""
    tables = at.store.tables(at.study)
    tables.save(at.dataset, name, frame, fingerprint(name, at))
    for other in TABLES:
        if name in _reads(other):
            tables.path(at.dataset, other).with_suffix(".fingerprint").unlink(missing_ok=True)
            if _spec(other).across:  # and every table across datasets that include this one
                for stale in tables.across(at.dataset, other):
                    stale.with_suffix(".fingerprint").unlink(missing_ok=True)


def _reads(name: str) -> set[str]:
    """Every table that table ``name`` is computed from, directly or not."""
    inputs = set(_spec(name).inputs)
    return inputs.union(*(_reads(i) for i in inputs))


HEAVY = ("frontier", "variants")  # the tables that measure models, the larger first: with the curves on a subset
# of the test split, each dataset's frontier takes longer than its variants (the reproducing chapter's timings)


def compute(study: Profile, datasets, store: Store, workers: int = 1, device=None, data_root=None) -> list[dict]:
    """Every dataset's ``HEAVY`` tables (and what they read), computed ahead of the chapters by ``workers``
    processes that split the cores, the largest first (every frontier, then every variants table, the hardest
    dataset's first within each, each table alone a task), so that the cores stay busy until the last finishes (a
    frontier last on one core had kept the other idle for minutes); the chapters then only read. Each task's
    progress (its phase, done of total, time left) is shown live (``progress.Board``); returns one record per
    table: dataset, table and seconds."""
    tasks = [(d, name) for name in HEAVY for d in reversed(data.by_difficulty(datasets))]
    labels = {f"{d}.{name}": f"{name} table — {data.spec(d).title}" for d, name in tasks}
    print(f"the {len(tasks)} analysis tables that measure models, {max(1, min(workers, len(tasks)))} at a time",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="minarch-progress-") as folder, progress.Board(Path(folder),
                                                                                              labels) as board:
        run = functools.partial(_compute_one, study, store.root, device, data_root, folder)
        if workers <= 1 or len(tasks) == 1:
            out = []
            for dataset, name in tasks:
                out.append(run(dataset, name))
                board.finish(f"{dataset}.{name}", out[-1]["seconds"])
            return [_timing(r) for r in out]
        with sweep.process_pool(workers) as pool:
            futures = {pool.submit(run, dataset, name): f"{dataset}.{name}" for dataset, name in tasks}
            out = []
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                board.finish(futures[future], record["seconds"])
                out.append(record)
        return [_timing(r) for r in sorted(out, key=lambda r: list(labels).index(f"{r['dataset']}.{r['table']}"))]


def _compute_one(study: Profile, root, device, data_root, folder, dataset: str, name: str) -> dict:
    start = time.perf_counter()
    with progress.to_file(Path(folder) / f"{dataset}.{name}.json"):
        get(name, Where(Store(root), study, dataset, device, data_root))
    return {"dataset": dataset, "table": name, "seconds": round(time.perf_counter() - start, 1)}


def _timing(record: dict) -> dict:
    """A build's timing record of a table: its dataset, "<table> table" and its seconds."""
    return {"dataset": record["dataset"], "chapter": f"{record['table']} table", "seconds": record["seconds"]}


def order() -> list[str]:
    """Every table, each after the tables it reads."""
    done: list[str] = []

    def visit(name, path=()):
        if name in path:
            raise ConfigError(f"the analysis tables read each other in a circle: {' -> '.join((*path, name))}")
        for i in _spec(name).inputs:
            visit(i, (*path, name))
        if name not in done:
            done.append(name)
    for name in TABLES:
        visit(name)
    return done


def _spec(name: str) -> Table:
    if name not in TABLES:
        raise ConfigError(f"unknown analysis table {name!r}: choose one of {list(TABLES)}")
    return TABLES[name]


def _configs(at: Where):
    """The study's runs on the dataset: its grid's and those its design added (``designed``)."""
    return at.study.configs(at.dataset) + design_.configs_of(designed(at))


@reach.covered  # its log decides which runs the tables read, and their ids are in the runs table's fingerprint
def designed(at: Where) -> pd.DataFrame:
    """The log of the runs the study's design added on the dataset (``design.plan``: round, family, model, size,
    seeds, why). Replaying the design reads every run, so its log is kept beside the tables, under a fingerprint of
    the study and the design's code, and replayed only when either changed; a design whose runs are not all
    trained is refused with what to run."""
    if at.study.design is None:
        return pd.DataFrame(columns=design_.LOG)
    tables, mine = at.store.tables(at.study), hashlib.sha256(
        "\n".join([at.study.study_id, code(design_.plan)]).encode()).hexdigest()
    if tables.fingerprint(at.dataset, "design") == mine:
        log = tables.load(at.dataset, "design")
        if all(at.store.path(c).exists() for c in design_.configs_of(log)):
            return log
    _run_ids(at, design=False)  # the study's own runs first, with their own message
    plan = design_.plan(at.study, at.dataset, at.store)
    if plan.missing:
        raise ConfigError(f"{len(plan.missing)} runs that the design of study {at.study.study_id} adds on "
                          f"{at.dataset} are not in {at.store.root}: train them first (minarch sweep --dataset "
                          f"{at.dataset} --profile {at.study.name}, or make book)")
    return tables.save(at.dataset, "design", plan.log, mine)


def _run_ids(at: Where, design: bool = True) -> list[str]:
    configs = _configs(at) if design else at.study.configs(at.dataset)
    ids = [c.run_id for c in configs if at.store.path(c).exists()]  # runs are stored whole, by a rename
    if len(ids) < len(configs):
        raise ConfigError(f"{len(configs) - len(ids)} of the {len(configs)} runs of study {at.study.study_id} on "
                          f"{at.dataset} are not in {at.store.root}: train them first (minarch sweep --dataset "
                          f"{at.dataset} --profile {at.study.name}, or make book)")
    return sorted(ids)


# -- the tables ------------------------------------------------------------------------------------------------------

@table()
def runs(at: Where) -> pd.DataFrame:
    """One row per run of the study on the dataset: its configuration, final metrics and history features."""
    configs = _configs(at)
    return regimes.run_features(at.store.table(configs=configs), at.store.histories(configs=configs))


@table()
def configurations(at: Where, runs: pd.DataFrame) -> pd.DataFrame:
    return regimes.configurations(runs)


@table()
def minimal(at: Where, runs: pd.DataFrame) -> pd.DataFrame:
    return regimes.minimal_params(runs)


@table()
def minimal_draws(at: Where, runs: pd.DataFrame) -> pd.DataFrame:
    return regimes.minimal_draws(runs)


@table()
def sensitivity(at: Where, runs: pd.DataFrame) -> pd.DataFrame:
    return regimes.sensitivity(runs)


@table()
def plateau(at: Where, configurations: pd.DataFrame) -> pd.DataFrame:
    return regimes.fit_plateau(configurations)


@table()
def representatives(at: Where, configurations: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    return regimes.representatives(configurations, runs)


@table()
def variants(at: Where, representatives: pd.DataFrame, configurations: pd.DataFrame,
             runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The compression table's curve part: every variant the pruning, quantization and component slices ask for
    (``variants.requests``: the representatives, and every seed of the matched-size bands), each measured once; one
    row per request, so that each slice's view is a selection. With the weights of the fine-tuned ones."""
    bands = regimes.seed_runs(pruning_.matched_bands(configurations), runs, seeds=None)
    asked = variants_.requests(at.grid, representatives, bands)
    unique = asked[["c_" + k for k in variants_.KEY]].drop_duplicates().rename(columns=lambda c: c[2:])
    runs_ = at.store.runs_of(pd.concat([representatives, bands]).drop_duplicates("run_id"))
    measured = variants_.measure(runs_, unique, at.grid, **at.compute)
    return variants_.joined(asked, measured.table), measured.weights


@table()
def pruning(at: Where, variants: pd.DataFrame) -> pd.DataFrame:
    return variants_.pruning_curves(variants)


@table()
def redundancy(at: Where, pruning: pd.DataFrame) -> pd.DataFrame:
    return pruning_.redundancy(pruning, at.grid.tolerance)


@table()
def matched_redundancy(at: Where, variants: pd.DataFrame, configurations: pd.DataFrame) -> pd.DataFrame:
    """Redundancy of the square DNNs in bands of matched size, every seed (globally pruned)."""
    bands = pruning_.matched_bands(configurations)
    if bands.empty:
        return pd.DataFrame(columns=["config_id", "band", "depth", "redundancy"])
    curves = variants_.pruning_curves(variants, "matched")
    return pruning_.redundancy(curves, at.grid.tolerance).merge(bands[["config_id", "band"]], on="config_id")


@table()
def quantization(at: Where, variants: pd.DataFrame) -> pd.DataFrame:
    return variants_.quantization_curves(variants)


@table()
def tolerance(at: Where, quantization: pd.DataFrame) -> pd.DataFrame:
    return quantization_.tolerance(quantization, at.grid.tolerance)


@table()
def frontier(at: Where, configurations: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The compression table's frontier part: every variant of the stable configurations, raced on validation; the
    owners' quantization-aware variants (with their fine-tuned weights); the whole test split of the variants the
    book reports."""
    grid = at.grid
    chosen = frontier_.chosen_runs(at.store, configurations, runs, grid.seeds)
    post = frontier_.race(chosen, grid.frontier, progress=False, **at.compute)
    tuned = at.store.runs_of(frontier_.owners(post).drop_duplicates("run_id"))
    aware, weights = recovery_.measure(tuned, grid.recovery, **at.compute)
    table_ = pd.concat([post, aware], ignore_index=True)
    return frontier_.complete(table_, at.store, frontier_.reported(table_), progress=False, **at.compute), weights


@table()
def compression(at: Where, variants: pd.DataFrame, frontier: pd.DataFrame) -> pd.DataFrame:
    """The one compression table of the dataset: every variant the study's grid asks for, by slice, with its bytes
    and what was measured of it (its two parts stacked: what ``minarch table`` shows and the archive holds)."""
    return pd.concat([variants, frontier.assign(slice=frontier.method.map(
        {"post-training": "frontier", "quantization-aware": "recovery"}))], ignore_index=True)


@table()
def recovery(at: Where, frontier: pd.DataFrame) -> pd.DataFrame:
    return recovery_.gain(frontier_.summarise(frontier))


@table()
def components(at: Where, variants: pd.DataFrame) -> pd.DataFrame:
    return variants_.sensitivity(variants)


@table()
def component_ranking(at: Where, components: pd.DataFrame) -> pd.DataFrame:
    return components_.ranking(components)


@table()
def verdicts(at: Where, configurations: pd.DataFrame, runs: pd.DataFrame, redundancy: pd.DataFrame,
             matched_redundancy: pd.DataFrame, tolerance: pd.DataFrame) -> pd.DataFrame:
    """The claim parts one dataset answers, by the findings' rules on this dataset alone: what its chapters say."""
    return findings_.one_dataset(configurations, runs, redundancy, matched_redundancy, tolerance)


@table(across=True)
def findings(at: Where, configurations: pd.DataFrame, runs: pd.DataFrame, minimal: pd.DataFrame,
             minimal_draws: pd.DataFrame, redundancy: pd.DataFrame, matched_redundancy: pd.DataFrame,
             tolerance: pd.DataFrame, frontier: pd.DataFrame) -> pd.DataFrame:
    """Every claim part of the paper (and the hybrids'), with this book's estimate, interval and verdict, across
    the datasets ``at`` names."""
    return findings_.all_claims(configurations, runs, minimal, minimal_draws, redundancy, matched_redundancy,
                                tolerance, frontier)
