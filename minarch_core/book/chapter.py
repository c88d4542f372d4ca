"""The book's chapters as records, and what every chapter notebook does first.

``PARAMETERS`` declares every papermill parameter once (name, type, range, default, help); ``CHAPTERS`` says which
of them each chapter takes, its title, and whether it is executed once per dataset. Notebooks check their
``parameters`` cell through ``open_chapter``, the pipeline and the CLI check theirs through the same records, and a
test holds every notebook's cell to its record. A wrong parameter stops a notebook at its first cell, with the
parameter's name and what it takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyses import tables as analysis
from ..engine import data, profiles, settings, sweep
from ..engine.errors import ConfigError
from ..engine.params import Param
from ..engine.profiles import Profile
from ..engine.store import Store, Tables
from . import plots, tables

FILES = (  # the parameters that name a project file: read from the project root, wherever the kernel runs
    ("build_info", "book/build-info.json", "the build-info.json that make book wrote"),
    ("benchmark", "benchmarks/latest.txt", "the output of make benchmark to print"),
    ("gpu_benchmark", "benchmarks/gpu-latest.txt", "the output of benchmarks/gpu.py to print"),
    ("phases", "benchmarks/phases-latest.txt", "the output of make phases to print"),
)
PARAMETERS = {p.name: p for p in (
    Param("dataset", str, "mnist", "the chapter's dataset", choices=lambda: list(data.DATASETS)),
    Param("datasets", str, ",".join(data.DATASETS), "comma-separated datasets of the book-level chapters"),
    Param("profile", str, "quick", "the size of the study", choices=lambda: list(profiles.PROFILES)),
    *(p for name, p in profiles.OVERRIDES.items() if name != "val_per_class"),
    Param("device", str, "auto", "auto, cpu, cuda or cuda:N; None reads MINARCH_DEVICE", optional=True),
    Param("results", str, None, "run store folder (None: MINARCH_RESULTS, else results/ of the project root)",
          optional=True),
    Param("data", str, None, "data root (None: MINARCH_DATA, else data/ of the project root)", optional=True),
    Param("workers", int, 1, "parallel processes: training workers, and a book's datasets executed at once", 1, 256),
    Param("renderer", str, "default", "'default' in JupyterLab, 'book' when building the book"),
    Param("figures", str, None, "folder for SVG/PNG copies of the figures (None: no copies)", optional=True),
    *(Param(name, str, default, f"{what} (relative to the project root)") for name, default, what in FILES),
)}
STUDY = ("profile", "seeds", "epochs", "train_per_class")
PER_DATASET = ("dataset", *STUDY, "device", "results", "data", "workers", "renderer", "figures")


@dataclass(frozen=True)
class ChapterSpec:
    name: str  # notebooks/<name>.py
    title: str
    per_dataset: bool  # executed once per dataset (else once per book)
    parameters: tuple[str, ...]  # the names its parameters cell sets, in order


CHAPTERS = {c.name: c for c in (  # in the order the book executes and shows them
    ChapterSpec("method", "Method", False, ("profile", "renderer", "figures")),
    ChapterSpec("sweep", "Design sweep", True, PER_DATASET),
    ChapterSpec("regimes", "Convergence regimes", True, PER_DATASET),
    ChapterSpec("pruning", "Pruning", True, PER_DATASET),
    ChapterSpec("quantization", "Quantization", True, PER_DATASET),
    ChapterSpec("smallest", "The smallest model", True, PER_DATASET),
    ChapterSpec("findings", "Findings across datasets", False, ("datasets", *STUDY, "results", "renderer", "figures")),
    ChapterSpec("reproducing", "Reproducing this book", False,
                ("build_info", "benchmark", "gpu_benchmark", "phases", "results", "figures")),
)}


class ParameterError(ConfigError):
    """A notebook parameter has the wrong type or value."""


def chapter(name: str) -> ChapterSpec:
    if name not in CHAPTERS:
        raise ConfigError(f"unknown chapter {name!r}: choose one of {list(CHAPTERS)}")
    return CHAPTERS[name]


def check(name: str, value, source: str = "notebook parameter"):
    """``value`` checked against the parameter's record; a ParameterError names the parameter and what it takes."""
    try:
        return PARAMETERS[name].check(value, source)
    except ConfigError as err:
        raise ParameterError(str(err)) from None


def given(name: str, namespace: dict) -> dict:
    """The parameters of chapter ``name`` as its notebook's namespace holds them (papermill injects them as
    variables), for ``open_chapter(**given("pruning", globals()))``."""
    return {p: namespace[p] for p in chapter(name).parameters}


@dataclass
class Chapter:
    """A chapter's context: its record, its datasets, its study (profile plus overrides), the run store and the
    study's analysis tables, where it computes (the resolved device and data root), and its figure folder."""
    spec: ChapterSpec
    datasets: list[str]
    study: Profile
    store: Store
    tables: Tables
    device: str
    data_root: Path
    workers: int
    figures: Path | None
    values: dict  # every checked parameter, for the chapters that need one of their own

    @property
    def dataset(self) -> str:
        return self.datasets[0]

    @property
    def title(self) -> str:
        """How the book names the chapter's (first) dataset."""
        return data.spec(self.dataset).title

    def file(self, name: str, required: bool = False) -> Path:
        """The project file that parameter ``name`` names (one of ``FILES``), found from the project root wherever
        the kernel runs (``settings.resolve``); ``required``: a missing file is an error that says what writes it."""
        if name not in [n for n, *_ in FILES]:
            raise ConfigError(f"parameter {name!r} names no project file: those that do are {[n for n, *_ in FILES]}")
        path = settings.resolve(self.values[name])
        if required and not path.exists():
            what = next(w for n, _, w in FILES if n == name)
            raise ConfigError(f"{self.values[name]} is missing from {settings.project_root()}: this chapter reads "
                              f"{what}; run make book first, or pass -p {name} PATH")
        return path

    @property
    def where(self) -> dict:
        """Where the analyses compute: pass ``**ch.where`` to every call that loads data or a model."""
        return {"device": self.device, "data_root": self.data_root}

    def configs(self, grids=None, dataset: str | None = None):
        return self.study.configs(dataset or self.dataset, grids)

    def sweep(self, grids=None) -> pd.DataFrame:
        """Train what the store lacks of this chapter's grids (nothing when it holds them all); their table."""
        configs = self.configs(grids)
        run = dict(device=self.device, data_root=self.data_root, progress=False)
        if self.workers > 1 and any(self.store.get(c) is None for c in configs):
            with sweep.process_pool(self.workers) as pool:
                return sweep.run(configs, self.store, executor=pool, **run)
        return sweep.run(configs, self.store, **run)

    @property
    def folder(self) -> str:
        """The chapter's subfolder of the figure folder: its dataset's name, or the chapter's own name."""
        return self.dataset if self.spec.per_dataset else self.spec.name

    def figure(self, chart, name: str):
        """Save SVG/PNG copies of ``chart`` (when a figure folder is set) and return it for display."""
        if self.figures is not None:
            plots.save(chart, self.figures / self.folder / name)
        return chart

    def table(self, name: str, frame: pd.DataFrame, columns: dict, caption: str, **options):
        """``frame`` shown for people (``tables.show``); the full frame is saved as CSV beside the figures (when a
        figure folder is set) and linked from the page."""
        link = None
        if self.figures is not None:
            path = self.figures / self.folder / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False)
            link = f"{'../' * (2 if self.spec.per_dataset else 1)}figures/{self.folder}/{name}.csv"  # from its page
        return tables.show(frame, columns, caption, link, **options)

    def ask(self, name: str, dataset: str | None = None) -> pd.DataFrame:
        """Analysis table ``name`` of this study and dataset (``analyses.tables``): the stored one while what it
        was computed from is unchanged, else computed now."""
        where = analysis.Where(self.store, self.study, dataset or self.dataset, self.device, self.data_root)
        return analysis.get(name, where)

    def ask_all(self, name: str) -> pd.DataFrame:
        """A table of every dataset of the chapter, stacked."""
        return pd.concat([self.ask(name, d).assign(dataset=d) for d in self.datasets], ignore_index=True)


def from_notebook(name: str, namespace: dict) -> Chapter:
    """What a chapter notebook calls first: ``chapter.from_notebook("pruning", globals())`` opens the chapter with
    the parameters its cell set (and papermill injected)."""
    return open_chapter(name, **given(name, namespace))


def open_chapter(name: str = "sweep", **values) -> Chapter:
    """Check every parameter against its record, resolve the device and data root, and return chapter ``name``'s
    context. Parameters not given take their declared defaults."""
    spec = chapter(name)
    unknown = set(values) - set(PARAMETERS)
    if unknown:
        raise ParameterError(f"unknown notebook parameter(s) {sorted(unknown)}: a chapter takes {list(PARAMETERS)}")
    p = {name: check(name, values.get(name, param.default)) for name, param in PARAMETERS.items()}
    names = p["datasets"].split(",") if "datasets" in spec.parameters else [p["dataset"]]
    datasets = list(dict.fromkeys(check("dataset", d.strip()) for d in names if d.strip()))
    if not datasets:
        raise ParameterError("notebook parameter 'datasets' names no dataset: pass e.g. -p datasets mnist,cifar10")
    study = profiles.study(p["profile"], **{k: p[k] for k in STUDY[1:]})
    device = str(settings.device(p["device"]))  # fails here, not mid-chapter, when CUDA is asked for and absent
    settings.keep_freed_memory()  # the kernel evaluates and fine-tunes: reuse its activations' buffers
    plots.use_renderer(p["renderer"])
    store = Store(p["results"])
    return Chapter(spec, datasets, study, store, store.tables(study), device, settings.data_root(p["data"]),
                   p["workers"], Path(p["figures"]) if p["figures"] else None, p)
