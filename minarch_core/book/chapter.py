"""What every chapter notebook does first: ``from_notebook`` checks its parameters against their records
(``parameters``) and opens its context, a ``Chapter``: its study, the run store, where it computes, and how it asks
for analysis tables and shows figures and tables.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown

from ..analyses import tables as analysis
from ..engine import data, profiles, settings, sweep
from ..engine.errors import ConfigError
from ..engine.profiles import Profile
from ..engine.store import Store
from . import plots, tables
from .parameters import FILES, PARAMETERS, STUDY, ChapterSpec, ParameterError, chapter, check, given


@dataclass
class Chapter:
    """A chapter's context: its record, its datasets, its study (profile plus overrides), the run store (and so the
    study's analysis tables), where it computes (the resolved device and data root), and its figure folder."""
    spec: ChapterSpec
    datasets: list[str]
    study: Profile
    store: Store
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

    def read(self, name: str, required: bool = False) -> str:
        """The text of the project file ``name`` names (``file``); empty when it is missing and not ``required``."""
        path = self.file(name, required)
        return path.read_text() if path.exists() else ""

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

    def figure(self, chart, name: str, empty: str = "Nothing to draw here."):
        """Save SVG/PNG copies of ``chart`` (when a figure folder is set) and return it for display; ``None``, a
        figure with nothing to draw, shows the sentence ``empty`` instead."""
        if chart is None:
            return Markdown(empty)
        if self.figures is not None:
            plots.save(chart, self.figures / self.folder / name)
        return chart

    def link(self, name: str) -> str:
        """The relative link from the chapter's page to file ``name`` of its figure folder."""
        return f"{'../' * (2 if self.spec.per_dataset else 1)}figures/{self.folder}/{name}"

    def table(self, name: str, frame: pd.DataFrame, columns: dict | None, caption: str, **options):
        """``frame`` shown for people (``tables.show``); the full frame is saved as CSV beside the figures (when a
        figure folder is set) and linked from the page."""
        link = None
        if self.figures is not None:
            path = self.figures / self.folder / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False)
            link = self.link(f"{name}.csv")
        return tables.show(frame, columns, caption, link, **options)

    def at(self, dataset: str | tuple[str, ...] | None = None) -> analysis.Where:
        """Where this chapter's analysis tables of ``dataset`` (default its own; a tuple for a table across
        datasets) live and are computed."""
        return analysis.Where(self.store, self.study, dataset or self.dataset, self.device, self.data_root)

    def ask(self, name: str, dataset: str | None = None) -> pd.DataFrame:
        """Analysis table ``name`` of this study and dataset (a table across datasets: of the chapter's datasets)
        (``analyses.tables``): the stored one while what it was computed from is unchanged, else computed now."""
        across = name in analysis.TABLES and analysis.TABLES[name].across
        return analysis.get(name, self.at(tuple(self.datasets) if across else dataset))

    def designed(self) -> pd.DataFrame:
        """The runs the study's design added on this chapter's dataset, one row per configuration, with why."""
        return analysis.designed(self.at())

    def exported(self, answers: pd.DataFrame, table: pd.DataFrame):
        """Each met answer of ``answers`` (``frontier.answers`` on the frontier ``table``) exported as
        ``export.write`` writes it, zipped beside the figures (when a figure folder is set) and linked."""
        from ..analyses import export
        met = answers[answers.met == "yes"]
        if self.figures is None or met.empty:
            return tables.downloads([], "no figure folder was given" if len(met) else "no target was met")
        folder, links = self.figures / self.folder / "models", []
        for _, same in met.groupby(export.KEYS, sort=False):  # one model may answer several targets
            row = same.iloc[0]
            name = self._model_name(row)
            with tempfile.TemporaryDirectory() as tmp:
                done = export.write(self.at(), export.seed_of(table, row), row, Path(tmp) / name)
                path = Path(shutil.make_archive(str(folder / name), "zip", tmp, name))
            links.append((list(same.target), done.card, self.link(f"models/{path.name}")))
        return tables.downloads(links)

    def _model_name(self, row) -> str:
        """The exported model answering ``row`` of ``frontier.answers`` (the first target it answers)."""
        return f"{self.dataset}-{round(row.target * 100)}"

    def downloads(self, answers: pd.DataFrame) -> dict:
        """{variant: link} of the models ``exported`` writes for ``answers`` (none without a figure folder): what the
        question chart links its answer to. A variant is ``config_id|method|sparsity|precision``."""
        if self.figures is None:
            return {}
        from ..analyses.frontier import variant_names
        met = answers[answers.met == "yes"]
        met = met[~variant_names(met).duplicated()]
        return dict(zip(variant_names(met), (self.link(f"models/{self._model_name(r)}.zip")
                                             for r in met.itertuples())))

    def archive(self, study, datasets):
        """Every run, history and analysis table of ``study`` on ``datasets`` as one download beside the figures
        (``Store.export``), linked; a sentence saying why not when no figure folder is set."""
        if self.figures is None:
            return HTML("<p>No figure folder was given to this chapter, so no archive was written.</p>")
        path = self.store.export(study, datasets, self.figures / "reproducing")
        return tables.archive(path, [data.spec(d).title for d in datasets])

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
    settings.use_data_root(values.get("data"))  # before the datasets are checked: its own are found there
    p = {name: check(name, values.get(name, param.default)) for name, param in PARAMETERS.items()}
    names = p["datasets"].split(",") if "datasets" in spec.parameters else [p["dataset"]]
    datasets = list(dict.fromkeys(check("dataset", d.strip()) for d in names if d.strip()))
    if not datasets:
        raise ParameterError("notebook parameter 'datasets' names no dataset: pass e.g. -p datasets mnist,cifar10")
    study = profiles.study(p["profile"], **{k: p[k] for k in STUDY[1:]})
    device = str(settings.device(p["device"]))  # fails here, not mid-chapter, when CUDA is asked for and absent
    settings.keep_freed_memory()  # the kernel evaluates and fine-tunes: reuse its activations' buffers
    plots.use_renderer(p["renderer"])
    return Chapter(spec, datasets, study, Store(p["results"]), device, settings.data_root(p["data"]), p["workers"],
                   Path(p["figures"]) if p["figures"] else None, p)
