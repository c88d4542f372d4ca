"""Build the book: train what the store lacks, execute every chapter notebook with papermill in dependency order,
then compile the HTML.

The sweeps of every dataset run first, in this process, with a live progress bar (runs done of total, rate, time
left); the sweep chapters then find every run stored. Then the analysis tables that measure models
(``analyses.tables.compute``: each dataset's compression table, ``workers`` processes at a time, the largest first),
so that the chapters only read them. Then the method chapter; per dataset sweep -> regimes ->
pruning -> quantization -> smallest, ``workers`` datasets at a time; then the cross-dataset findings and the
reproducing chapter, each announced as it starts ("[5/18] Pruning — MNIST") with its time when done. Notebooks are
read from their jupytext ``.py`` sources and written, executed, to ``book/<dataset>/``. A
notebook that fails stops the build with its name, cell and error; it is kept in ``_build/failed/`` for inspection,
and neither the previous executed notebook nor the previous HTML book is touched. The HTML is built into a staging
folder and swapped into ``_build/html`` only when Jupyter Book succeeds (warnings count as errors).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager

from ..analyses import design, tables
from ..engine import data, profiles, settings, sweep
from ..engine.errors import MinarchError
from ..engine.store import Store
from .parameters import CHAPTERS, STUDY, ParameterError, chapter as chapter_spec, check

ROOT = Path(__file__).resolve().parents[2]  # the checkout: notebooks/, book/ sources, _config.yml, _toc.yml
PER_DATASET = [c.name for c in CHAPTERS.values() if c.per_dataset]  # in dependency order
MANUAL = ("running", "data", "sweeps", "smallest", "tables", "guarantees", "speed", "extending")  # book/using/*.md
EMPTY_STORE_RECORD = "build-info-empty-store.json"  # in book/: the last build that trained every run it needed


class ChapterError(MinarchError):
    """A chapter notebook raised an error while executing."""


def execute(chapter: str, output: Path, parameters: dict, cell_timeout: int | None = None, log: bool = False,
            root: Path = ROOT) -> float:
    """Execute ``notebooks/<chapter>.py`` with ``parameters`` into ``output`` (working directory ``root``); the
    seconds it took."""
    source = ROOT / "notebooks" / f"{chapter_spec(chapter).name}.py"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    running = output.with_name(f".{output.stem}.running.ipynb")
    start = time.perf_counter()
    os.environ.setdefault("MINARCH_PROGRESS", "0")
    try:
        with tempfile.TemporaryDirectory(prefix="minarch-kernel-") as sockets:
            # the kernel starts in ``root`` by its own setting (nbclient's resources path), not by papermill's
            # ``cwd``: that changes this whole process's folder, and chapters executing at once raced on it
            papermill.execute_notebook(jupytext.read(source), str(running), parameters=parameters,
                                       kernel_name="python3", language="python", log_output=log, progress_bar=False,
                                       resources={"metadata": {"path": str(root)}}, execution_timeout=cell_timeout,
                                       kernel_manager_class=_local_kernel(sockets))
    except papermill.PapermillExecutionError as err:
        kept = Path(root) / "_build" / "failed" / f"{output.parent.name}-{output.name}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(running, kept)
        raise ChapterError(f"chapter {chapter!r} ({parameters.get('dataset', 'all datasets')}) failed in cell "
                           f"{err.exec_count}: {err.ename}: {err.evalue}\n  the executed notebook is kept at {kept}; "
                           f"the previous book is untouched") from None
    nb = nbformat.read(running, as_version=4)
    present(nb, chapter_spec(chapter), parameters)
    nbformat.write(nb, running)
    os.replace(running, output)
    return time.perf_counter() - start


def _local_kernel(folder: str) -> type:
    """A kernel manager whose kernel talks over local sockets in ``folder`` (no TCP ports, so no warning about
    unencrypted TCP on the terminal) and keeps its own log off the terminal: jupyter_client interrupts a kernel
    before shutting it down, and a kernel still busy then logs "KeyboardInterrupt caught in kernel" (seen with two
    datasets' chapters at once). The cells' output travels over the kernel's channels, not this log."""
    async def start_kernel(self, **kw):
        await AsyncKernelManager.start_kernel(self, **{"stderr": subprocess.DEVNULL, **kw})

    return type("LocalKernelManager", (AsyncKernelManager,), {
        "__init__": lambda self, **kw: AsyncKernelManager.__init__(self, **{"transport": "ipc",
                                                                            "ip": f"{folder}/kernel", **kw}),
        "start_kernel": start_kernel})


HIDE = {"parameters": "remove-cell", "injected-parameters": "remove-cell"}  # papermill's cells: build debris


def present(nb, spec, parameters: dict) -> None:
    """Make an executed notebook read as a page: its heading names its dataset; papermill's parameter cells are
    removed from the page and every other code cell's source is folded away one click from its output; a note
    says how to run the chapter again."""
    dataset = parameters.get("dataset") if spec.per_dataset else None
    title = f"{spec.title} — {data.spec(dataset).title}" if dataset else spec.title
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code":
            extra = [HIDE[t] for t in tags if t in HIDE] or ["hide-input"]
            tags += [t for t in extra if t not in tags and not any(x.startswith("remove") for x in tags)]
    heading = next(c for c in nb.cells if c.cell_type == "markdown")
    first, _, rest = heading.source.partition("\n")
    if not first.startswith("# "):
        raise ChapterError(f"chapter {spec.name!r}: its first Markdown cell must start with its '# ' heading")
    heading.source = f"# {title}\n{rest}"
    shown = {k: parameters[k] for k in ("dataset", "datasets", "profile") if k in parameters}
    command = f"minarch chapter {spec.name}" + "".join(
        f" --{k} {v}" if k in ("dataset", "profile") else f" -p {k} {v}" for k, v in shown.items())
    nb.cells.insert(nb.cells.index(heading) + 1, nbformat.v4.new_markdown_cell(
        f":::{{admonition}} Run this chapter yourself\n:class: tip, dropdown\n"
        f"Its source is the notebook `notebooks/{spec.name}.ipynb` (open it in JupyterLab and run it top to bottom). "
        f"To execute it as this book did: `{command}`, or "
        f"`papermill notebooks/{spec.name}.ipynb out.ipynb"
        + "".join(f" -p {k} {v}" for k, v in shown.items()) + "`; every "
        f"parameter is listed in {{doc}}`the method chapter <{'../' if dataset else ''}method>`.\n:::",
        metadata={"tags": []}))


def _tables_computed(study: profiles.Profile, results: str | None, since: float) -> dict:
    """How many of the study's analysis tables this build computed (the rest it reused: ``analyses.tables``)."""
    folder = Store(results).tables(study).folder
    stamps = [p.stat().st_mtime for p in folder.rglob("*.fingerprint")]
    return {"tables_computed": sum(t >= since for t in stamps), "tables": len(stamps)}


def build(profile: str = "quick", datasets=tuple(data.DATASETS), workers: int = 1, device: str | None = None,
          results: str | None = None, data_root: str | None = None, html: bool = True,
          cell_timeout: int | None = 6 * 3600, log: bool = False, root: Path = ROOT, **overrides) -> Path:
    """Execute every chapter for every dataset, then build the HTML book; returns ``<root>/_build/html``.

    Every parameter is checked against its record before anything runs. ``root`` is where the book is built: the
    checkout by default, or another folder, which then receives a copy of the book's sources first (the tests
    build there, leaving a developer's own book alone). ``overrides`` (seeds, epochs, train_per_class) change the
    profile's study in every chapter, as the chapters' own parameters do."""
    settings.use_data_root(data_root)  # the kernels and workers inherit it
    unknown = set(overrides) - set(STUDY[1:])
    if unknown:
        raise ParameterError(f"unknown book parameter(s) {sorted(unknown)}: a build overrides {list(STUDY[1:])}")
    common = {"profile": profile, "results": results, "renderer": "book", **overrides}
    given = dict(common, device=device, data=data_root, workers=workers, datasets=",".join(datasets))
    for name, value in given.items():
        check(name, value, "book parameter")
    datasets = data.by_difficulty(datasets)
    root = Path(root)
    if root.resolve() != ROOT:
        _copy_sources(root)
    book = root / "book"
    common["figures"] = "book/figures"  # relative to the root, where papermill runs: no machine path in a page
    started, timings = datetime.datetime.now(datetime.timezone.utc), []
    start = time.perf_counter()
    study = profiles.study(profile, **overrides)
    trained, total_runs = train(study, datasets, workers, device, results, data_root)
    timings.append({"dataset": "all", "chapter": "training", "seconds": round(time.perf_counter() - start, 1)})
    timings += tables.compute(study, datasets, Store(results), workers, device, data_root)
    total = sum(len(datasets) if c.per_dataset else 1 for c in CHAPTERS.values())

    count, lock = iter(range(1, total + 1)), threading.Lock()
    parallel = max(1, min(workers, len(datasets)))  # datasets whose chapters execute at once

    def run(spec, out, dataset=None, **extra):
        values = {**given, **common, **extra, **({"dataset": dataset} if dataset else {})}
        name = f"{spec.title} — {data.spec(dataset).title}" if dataset else spec.title
        with lock:
            label = f"[{next(count)}/{total}] {name}"
        with Ticker(label, live=parallel == 1):
            seconds = execute(spec.name, out, {k: values[k] for k in spec.parameters if k in values}, cell_timeout,
                              log, root)
        timings.append({"dataset": dataset or "all", "chapter": spec.name, "seconds": round(seconds, 1)})

    book_level = [c for c in CHAPTERS.values() if not c.per_dataset]
    run(book_level[0], book / f"{book_level[0].name}.ipynb")  # the method chapter
    per_dataset(datasets, parallel, lambda spec, dataset: run(spec, book / dataset / f"{spec.name}.ipynb", dataset))
    for spec in book_level[1:]:
        if spec.name == "reproducing":  # last: it reports the build
            info = {"commit": _commit(), "profile": profile, "datasets": datasets,
                    "overrides": {k: v for k, v in overrides.items() if v is not None},
                    "started": started.strftime("%Y-%m-%d %H:%M UTC"), "seconds": time.perf_counter() - start,
                    "parallel": parallel, "notebooks": list(timings), "runs_trained": trained, "runs": total_runs,
                    **_tables_computed(study, results, started.timestamp()),
                    "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores" + _gpu()}
            (book / "build-info.json").write_text(json.dumps(info, indent=1))
            if total_runs and trained == total_runs:  # the benchmark's book-from-an-empty-store record, kept
                (book / EMPTY_STORE_RECORD).write_text(json.dumps(info, indent=1))  # until the next such build
            run(spec, book / f"{spec.name}.ipynb", build_info="book/build-info.json")
        else:
            run(spec, book / f"{spec.name}.ipynb", datasets=",".join(datasets))
    if not html:
        return book
    with Ticker("building the HTML book"):
        return compile_html(datasets, root)


def per_dataset(datasets, parallel: int, run) -> None:
    """``run(spec, dataset)`` for every per-dataset chapter, each dataset's in dependency order, ``parallel``
    datasets at a time (the hardest first, so that the longest does not start last), each notebook's kernel then
    taking its share of the cores: the analyses' small models use a second core poorly (a chapter on two cores
    takes well over half its time on one), so two datasets on a core each finish sooner than one after the other
    on both. The first failure stops every dataset before its next chapter, and is raised once the chapters under
    way have finished."""
    chapters = [spec for spec in CHAPTERS.values() if spec.per_dataset]
    if parallel == 1:
        for dataset in datasets:
            for spec in chapters:
                run(spec, dataset)
        return
    failed = threading.Event()

    def chain(dataset):
        for spec in chapters:
            if failed.is_set():
                return
            try:
                run(spec, dataset)
            except BaseException:
                failed.set()
                raise

    threads = str(max(1, (os.cpu_count() or 1) // parallel))
    with _environ(OMP_NUM_THREADS=threads), ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(chain, d) for d in reversed(datasets)]
    for future in futures:
        if future.exception() is not None:
            raise future.exception()


@contextlib.contextmanager
def _environ(**values):
    """Environment variables set for what starts meanwhile (notebook kernels inherit them), then restored."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train(study: profiles.Profile, datasets, workers: int = 1, device=None, results=None,
          data_root=None) -> tuple[int, int]:
    """Train every run of the book's sweeps that the store lacks, with a live progress bar; the sweep chapters
    then find them all stored. Returns (runs trained now, runs of the book): a build from an empty store trained
    them all."""
    configs = [c for d in datasets for c in study.configs(d)]
    store = Store(results)
    missing = sum(store.get(c) is None for c in configs)
    quiet = os.environ.get("MINARCH_PROGRESS", "1") == "0"
    if missing:
        print(f"training what the run store lacks of {len(configs):,} runs ({', '.join(datasets)}), {workers} "
              f"worker(s)", flush=True)
    kw = dict(device=device, data_root=data_root, progress=not quiet)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            kw["executor"] = stack.enter_context(sweep.process_pool(workers))
        if missing:
            sweep.run(configs, store, **kw)
        trained, added = design.train(study, datasets, store, lambda todo: sweep.run(todo, store, **kw))
    return missing + trained, len(configs) + added


class Ticker:
    """Announces a step, shows its elapsed time on the same line while it runs (on a terminal, unless
    MINARCH_PROGRESS=0 or ``live`` is off because other steps print meanwhile), and its duration when done."""

    def __init__(self, label: str, live: bool = True):
        self.label, self.done = label, threading.Event()
        self.live = live and sys.stdout.isatty() and os.environ.get("MINARCH_PROGRESS", "1") != "0"

    def __enter__(self):
        self.start = time.perf_counter()
        _say(f"{self.label} ..." + ("" if self.live else "\n"))
        if self.live:
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()
        return self

    def _tick(self):
        while not self.done.wait(1.0):
            _say(f"\r{self.label} ... {time.perf_counter() - self.start:5.0f} s")

    def __exit__(self, kind, *_):
        self.done.set()
        if self.live:
            self.thread.join()
        state = "failed after" if kind else "done in"
        _say(f"{chr(13) if self.live else ''}{self.label}: {state} {time.perf_counter() - self.start:.1f} s\n")


def _say(text: str) -> None:
    """One write, so that lines of chapters announced at once never run into each other (print writes its end
    apart)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def compile_html(datasets, root: Path = ROOT) -> Path:
    """Build the HTML book from the executed notebooks into a staging folder, then swap it into ``_build/html``."""
    root = Path(root)
    staging = root / "_build" / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    toc, config = staging / "_toc.yml", staging / "_config.yml"
    toc.write_text(toc_text(datasets))
    config.write_text(yaml.safe_dump(book_config(root), sort_keys=False))
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--path-output", str(staging),
               "--toc", str(toc), "--config", str(config), "-W", "--keep-going"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (the previous book is untouched):\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    built = staging / "_build" / "html"
    if (root / "book" / "figures").exists():
        shutil.copytree(root / "book" / "figures", built / "figures")
    final, old = root / "_build" / "html", root / "_build" / ".html-old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(built, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def book_config(root: Path = ROOT) -> dict:
    """``_config.yml`` with the buttons that need the repository's public URL shown only when ``repository.url``
    is set (the one setting a fork changes)."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text())
    has_url = bool((config.get("repository") or {}).get("url"))
    config.setdefault("html", {}).update(use_repository_button=has_url, use_issues_button=has_url)
    return config


def table_of_contents(datasets=None) -> dict:
    """The book's table of contents, from the chapter and dataset records: the book-level chapters, then one part
    per dataset (easiest first), the conclusions, and the manual. ``_toc.yml`` holds it for every registered dataset
    (a test keeps it so)."""
    datasets = data.by_difficulty(datasets)
    book_level = [c for c in CHAPTERS.values() if not c.per_dataset]
    entry = lambda path: {"file": path}  # noqa: E731
    parts = [{"caption": "The study", "chapters": [entry(f"book/{book_level[0].name}")]}]
    parts += [{"caption": data.spec(d).title, "chapters": [entry(f"book/{d}/{c}") for c in PER_DATASET]}
              for d in datasets]
    parts += [{"caption": "Conclusions", "chapters": [entry(f"book/{c.name}") for c in book_level[1:]]}]
    parts += [{"caption": "Using minarch", "chapters": [entry(f"book/using/{page}") for page in MANUAL]}]
    return {"format": "jb-book", "root": "book/intro", "parts": parts}


def toc_text(datasets=None) -> str:
    return ("# The full book, generated from the chapter and dataset records (pipeline.table_of_contents);\n"
            "# the pipeline builds from a copy limited to the datasets it executed.\n"
            + yaml.safe_dump(table_of_contents(datasets), sort_keys=False))


def _copy_sources(root: Path) -> None:
    """The book's sources (configuration, prose, the manual, static files) into another build folder."""
    (root / "book" / "using").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, root / name)
    for page in [*(ROOT / "book").glob("*.md"), *(ROOT / "book" / "using").glob("*.md")]:
        shutil.copy2(page, root / page.relative_to(ROOT))
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static", dirs_exist_ok=True)


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _gpu() -> str:
    import torch
    return f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
