"""The chapter notebooks: paired and in sync, parameterised, stopped at once by a bad parameter, and deciding
nothing themselves."""
import ast
import asyncio
import os
import subprocess
import sys
import threading

import jupytext
import pytest

from minarch_core.book import parameters, pipeline

NOTEBOOKS = sorted((pipeline.ROOT / "notebooks").glob("*.py"))


def cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_chapter_has_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == sorted(parameters.CHAPTERS)


COMPUTING = (ast.If, ast.For, ast.While, ast.IfExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
             ast.BinOp, ast.Compare, ast.BoolOp, ast.Lambda, ast.FunctionDef)


def computed_lines(py) -> list[str]:
    """The lines of a notebook's code cells that branch, loop, compare, define or do arithmetic: analysis that
    belongs in the library, where it is tested and the findings read it."""
    found = []
    for cell in jupytext.read(py).cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = cell.source.splitlines()
        found += [lines[n - 1].strip() for n in sorted({node.lineno for node in ast.walk(ast.parse(cell.source))
                                                        if isinstance(node, COMPUTING)})]
    return found


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_asks_plots_and_writes_but_computes_nothing(py):
    assert computed_lines(py) == [], f"{py.name} computes; move it into a tested library function"


def test_the_computed_lines_check_finds_a_decision(tmp_path):
    fake = tmp_path / "fake.py"
    source = "# %%\nx = ch.ask('tolerance')\nverdict = 'more' if x.a.mean() > 0.5 else 'less'\n"
    jupytext.write(jupytext.reads(source, fmt="py:percent"), fake, fmt="py:percent")
    assert computed_lines(fake) == ["verdict = 'more' if x.a.mean() > 0.5 else 'less'"]


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_pairs_are_in_sync(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb} is missing: run jupytext --sync {py}"
    assert cells(jupytext.read(py)) == cells(jupytext.read(ipynb)), f"{py.name} and {ipynb.name} differ: " \
        f"run jupytext --sync notebooks/*.py"


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_the_chapters_record_in_both_files(py):
    """Every notebook sets exactly the parameters its chapter record names, to their declared defaults."""
    spec = parameters.CHAPTERS[py.stem]
    for path in (py, py.with_suffix(".ipynb")):
        tagged = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        values = {}
        exec(tagged[0].source, {}, values)
        assert list(values) == list(spec.parameters), f"{path.name} must set {spec.parameters}"
        for name, value in values.items():
            assert value == parameters.PARAMETERS[name].default, f"{path.name}: {name} = {value!r}, declared default " \
                f"{parameters.PARAMETERS[name].default!r}"


@pytest.mark.parametrize("name, value, message", [
    ("seeds", "five", "notebook parameter 'seeds' must be an integer in 1..1,000 or None"),
    ("seeds", 2.5, "notebook parameter 'seeds' must be an integer in 1..1,000 or None"),
    ("seeds", 0, "notebook parameter 'seeds' must be an integer in 1..1,000 or None"),
    ("seeds", -3, "got -3"),
    ("epochs", 0, "notebook parameter 'epochs' must be an integer in 1..10,000 or None"),
    ("train_per_class", -1, "notebook parameter 'train_per_class' must be an integer in 1..1,000,000 or None"),
    ("workers", 0, "notebook parameter 'workers' must be an integer in 1..256"),
    ("dataset", "imagenet", "notebook parameter 'dataset' must be one of ['mnist'"),
])
@pytest.mark.book
def test_a_wrong_parameter_stops_the_notebook_at_its_first_cell(tmp_path, name, value, message):
    store = tmp_path / "results"
    with pytest.raises(pipeline.ChapterError) as err:
        pipeline.execute("sweep", tmp_path / "book" / "mnist" / "sweep.ipynb",
                         {"dataset": "mnist", "profile": "smoke", name: value, "results": str(store)}, root=tmp_path)
    text = str(err.value)
    assert "chapter 'sweep'" in text and "failed in cell" in text and "ParameterError" in text and message in text
    kept = tmp_path / "_build" / "failed" / "mnist-sweep.ipynb"
    assert kept.exists() and not (tmp_path / "book" / "mnist" / "sweep.ipynb").exists()
    executed = jupytext.read(kept)
    code = [c for c in executed.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "from_notebook" in code[-1].source  # the first cell after the parameters stopped it
    assert not store.exists()  # nothing trained, nothing written


@pytest.mark.book
@pytest.mark.subprocess
def test_a_chapter_runs_without_kernel_warnings_on_the_terminal(tmp_path):
    """What papermill's kernels print (TCP warnings, shutdown notices) is not the reader's business."""
    import subprocess
    import sys
    out = tmp_path / "method.ipynb"
    done = subprocess.run([sys.executable, "-m", "minarch_core.cli", "chapter", "method", "--profile", "smoke",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "IPKernelApp" not in done.stderr, done.stderr
    assert out.exists() and "executed in" in done.stdout


def test_datasets_execute_at_once_and_a_failure_stops_the_others_before_their_next_chapter(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    together, raised, seen = threading.Barrier(2, timeout=30), threading.Event(), []

    def run(spec, dataset):
        seen.append((dataset, spec.name, os.environ.get("OMP_NUM_THREADS")))
        if spec.name == "sweep":
            together.wait()  # both datasets' first chapters are under way at the same time
        elif dataset == "cifar10":
            raised.set()
            raise pipeline.ChapterError("chapter 'regimes' (cifar10) failed")
        else:
            assert raised.wait(30)  # mnist's regimes ends after the failure: its next chapter must not start

    with pytest.raises(pipeline.ChapterError, match="regimes"):
        pipeline.per_dataset(["mnist", "cifar10"], 2, run)
    assert {(d, c) for d, c, _ in seen} == {(d, c) for d in ("mnist", "cifar10") for c in ("sweep", "regimes")}
    assert {threads for *_, threads in seen} == {"1"}  # each kernel takes its share of the 2 cores
    assert "OMP_NUM_THREADS" not in os.environ


def test_a_chapter_kernel_starts_in_the_book_root_without_changing_this_process_folder(tmp_path, monkeypatch):
    seen = {}

    def execute_notebook(nb, output, **kw):
        seen.update(kw, cwd_during=os.getcwd())
        raise RuntimeError("stop")

    monkeypatch.setattr(pipeline.papermill, "execute_notebook", execute_notebook)
    with pytest.raises(RuntimeError, match="stop"):
        pipeline.execute("method", tmp_path / "method.ipynb", {"profile": "smoke"}, root=tmp_path)
    assert seen["resources"] == {"metadata": {"path": str(tmp_path)}}
    assert seen.get("cwd") is None and seen["cwd_during"] != str(tmp_path)  # no process-wide chdir to race on


def test_chapters_announced_at_once_print_whole_lines(monkeypatch):
    writes = []  # each write is one piece of output another thread cannot split
    monkeypatch.setattr(sys, "stdout", type("Out", (), {"write": writes.append, "flush": lambda self: None,
                                                        "isatty": lambda self: False})())
    with pipeline.Ticker("[5/18] Pruning — MNIST", live=False):
        pass
    assert len(writes) == 2 and writes[0] == "[5/18] Pruning — MNIST ...\n"
    assert writes[1].startswith("[5/18] Pruning — MNIST: done in") and writes[1].endswith(" s\n")


def test_a_kernel_logs_nothing_to_the_terminal(tmp_path, monkeypatch):
    """jupyter_client interrupts a kernel before its shutdown; a busy kernel then logs to its stderr."""
    launched = {}

    async def launch(self, cmd, **kw):
        launched.update(kw)
        raise RuntimeError("stop")

    manager = pipeline._local_kernel(str(tmp_path))
    monkeypatch.setattr(manager, "_async_launch_kernel", launch)
    with pytest.raises(RuntimeError, match="stop"):
        asyncio.run(manager(kernel_name="python3").start_kernel())
    assert launched["stderr"] is subprocess.DEVNULL
