"""Exploring in JupyterLab: from any folder of a checkout the notebooks find the project's store, data and files;
each runs top to bottom as it is and draws its charts with no network; JupyterLab and jupytext's contents manager
come with the setup."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from minarch_core.book import chapter, parameters, pipeline
from minarch_core.engine import settings
from minarch_core.engine.errors import ConfigError

BIN = Path(sys.executable).parent


def fake_checkout(root: Path) -> Path:
    (root / "minarch_core").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'minarch'\n")
    for folder in ("notebooks", "book/mnist"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.fixture
def no_location_settings(monkeypatch):
    monkeypatch.delenv("MINARCH_RESULTS", raising=False)
    monkeypatch.delenv("MINARCH_DATA", raising=False)


def test_defaults_resolve_against_the_project_root_from_any_folder_of_a_checkout(tmp_path, monkeypatch,
                                                                                  no_location_settings):
    root = fake_checkout(tmp_path / "checkout").resolve()
    for folder in (root, root / "notebooks", root / "book" / "mnist"):
        monkeypatch.chdir(folder)
        assert settings.project_root() == root
        assert settings.results_root() == root / "results" and settings.data_root() == root / "data"
        assert settings.resolve("book/build-info.json") == root / "book" / "build-info.json"
        assert settings.resolve("/elsewhere/x.json") == Path("/elsewhere/x.json")
    monkeypatch.setenv("MINARCH_RESULTS", "/store")  # the settings still override
    monkeypatch.setenv("MINARCH_DATA", "/data")
    assert settings.results_root() == Path("/store") and settings.data_root() == Path("/data")
    assert settings.results_root("given") == Path("given")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.delenv("MINARCH_RESULTS")
    assert settings.project_root() == outside.resolve() and settings.results_root() == outside.resolve() / "results"


def test_a_chapter_reads_its_files_from_the_project_root(tmp_path, monkeypatch, no_location_settings):
    root = fake_checkout(tmp_path / "checkout").resolve()
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "latest.txt").write_text("figures")
    monkeypatch.chdir(root / "notebooks")
    ch = chapter.open_chapter("reproducing")
    assert ch.file("benchmark").read_text() == "figures"
    assert ch.store.root == root / "results"
    with pytest.raises(ConfigError, match=r"book/build-info.json is missing from .*checkout: .*run make book first"):
        ch.file("build_info", required=True)
    with pytest.raises(ConfigError, match="names no project file"):
        ch.file("results")


def test_outside_a_checkout_a_chapter_names_the_store_it_looked_in(tmp_path, monkeypatch, no_location_settings):
    monkeypatch.chdir(tmp_path)
    ch = chapter.open_chapter("regimes", profile="smoke")
    with pytest.raises(ConfigError) as err:
        ch.ask("runs")
    assert str(tmp_path.resolve() / "results") in str(err.value) and "make book" in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_jupyterlab_is_set_up_and_opens_the_py_sources_as_notebooks(tmp_path):
    version = subprocess.run([BIN / "jupyter", "lab", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip().startswith("4."), version.stderr
    port, token = free_port(), "minarch-test"
    server = subprocess.Popen(
        [BIN / "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={pipeline.ROOT}", "--ServerApp.port_retries=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    try:
        url = f"http://127.0.0.1:{port}/api/contents/notebooks/regimes.py?token={token}"
        deadline, model = time.monotonic() + 90, None
        while model is None and time.monotonic() < deadline:
            try:
                model = json.load(urllib.request.urlopen(url, timeout=5))
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "jupyter lab exited"
                time.sleep(0.5)
        assert model is not None, "jupyter lab did not answer within 90 s"
        assert model["type"] == "notebook"  # jupytext's contents manager reads the percent script as a notebook
        tags = [c["metadata"].get("tags", []) for c in model["content"]["cells"]]
        assert ["parameters"] in tags
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def lab_checkout(smoke_book, tmp_path_factory):
    """A copy of this checkout whose run store, at the project root's default place, is the smoke book's."""
    built, _ = smoke_book
    root = tmp_path_factory.mktemp("lab") / "checkout"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=pipeline.ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pipeline.ROOT / name, root / name)
    shutil.copytree(built / "results", root / "results")
    shutil.copy2(built / "book" / "build-info.json", root / "book" / "build-info.json")
    return root


@pytest.mark.book
@pytest.mark.parametrize("name", list(parameters.CHAPTERS))
def test_every_chapter_runs_from_its_folder_as_it_is_and_draws_its_figures(lab_checkout, name, monkeypatch):
    """As JupyterLab runs it: the kernel in notebooks/, no setting for the store, only the profile changed."""
    monkeypatch.delenv("MINARCH_RESULTS")
    nb = nbformat.read(lab_checkout / "notebooks" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert ('profile = "quick"' in cell.source) == (name != "reproducing")  # it reads the build's own record
    cell.source = cell.source.replace('profile = "quick"', 'profile = "smoke"')
    with tempfile.TemporaryDirectory(prefix="minarch-kernel-") as sockets:
        NotebookClient(nb, timeout=900, kernel_name="python3", kernel_manager_class=pipeline._local_kernel(sockets),
                       resources={"metadata": {"path": str(lab_checkout / "notebooks")}}).execute()
    figures = [c for c in nb.cells if c.cell_type == "code" and "ch.figure(" in c.source]
    charts = 0
    for cell in figures:  # a chart, or the sentence a chapter says where the smoke grid leaves a figure empty
        shown = [o["data"] for o in cell.outputs if "data" in o]
        html = [d["text/html"] for d in shown if "text/html" in d]
        assert html or any("text/markdown" in d for d in shown), f"{name}: a figure cell shows nothing:\n{cell.source}"
        for page in html:
            assert "window.vegaEmbed=" in page and "vegaEmbed('#vis-" in page  # the Vega scripts carried along
        charts += len(html)
    assert charts or name == "reproducing"  # the one chapter without a chart
    assert not (lab_checkout / "notebooks" / "results").exists()
