"""The book's chapters and their papermill parameters, as records.

``PARAMETERS`` declares every papermill parameter once (name, type, range, default, help); ``CHAPTERS`` says which
of them each chapter takes, its title, and whether it is executed once per dataset. Notebooks check their
``parameters`` cell through ``chapter.open_chapter``, the pipeline and the CLI check theirs through the same records,
and a test holds every notebook's cell to its record. A wrong parameter stops a notebook at its first cell, with the
parameter's name and what it takes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..engine import data, profiles
from ..engine.errors import ConfigError
from ..engine.params import Param

FILES = (  # the parameters that name a project file: read from the project root, wherever the kernel runs
    ("build_info", "book/build-info.json", "the build-info.json that make book wrote"),
    ("benchmark", "benchmarks/latest.txt", "the output of make benchmark to print"),
    ("gpu_benchmark", "benchmarks/gpu-latest.txt", "the output of benchmarks/gpu.py to print"),
    ("phases", "benchmarks/phases-latest.txt", "the output of make phases to print"),
    ("racing", "benchmarks/racing-latest.txt", "the output of make racing to print"),
)
PARAMETERS = {p.name: p for p in (
    Param("dataset", str, "mnist", "the chapter's dataset", choices=lambda: data.available()),
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
    ChapterSpec("method", "Method", False, ("datasets", "profile", "renderer", "figures")),
    ChapterSpec("sweep", "Design sweep", True, PER_DATASET),
    ChapterSpec("regimes", "Convergence regimes", True, PER_DATASET),
    ChapterSpec("pruning", "Pruning", True, PER_DATASET),
    ChapterSpec("quantization", "Quantization", True, PER_DATASET),
    ChapterSpec("smallest", "The smallest model", True, PER_DATASET),
    ChapterSpec("findings", "Findings across datasets", False, ("datasets", *STUDY, "results", "renderer", "figures")),
    ChapterSpec("reproducing", "Reproducing this book", False,
                ("build_info", "benchmark", "gpu_benchmark", "phases", "racing", "results", "figures")),
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
