"""The chapter notebooks: paired and in sync, parameterised, and stopped at once by a bad parameter."""
from pathlib import Path

import jupytext
import pytest

from minarch_core import chapter, pipeline

NOTEBOOKS = sorted((pipeline.ROOT / "notebooks").glob("*.py"))


def cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_chapter_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} == {*pipeline.CHAPTERS, *pipeline.BOOK_CHAPTERS}


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_pairs_are_in_sync(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb} is missing: run jupytext --sync {py}"
    assert cells(jupytext.read(py)) == cells(jupytext.read(ipynb)), f"{py.name} and {ipynb.name} differ: " \
        f"run jupytext --sync notebooks/*.py"


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_survives_in_both_files(py):
    for path in (py, py.with_suffix(".ipynb")):
        tagged = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
        assert names <= set(chapter.PARAMETERS), f"undocumented parameters in {path}: add them to chapter.PARAMETERS"


@pytest.mark.parametrize("value, message", [("five", "notebook parameter 'seeds' must be int or None"),
                                            (2.5, "notebook parameter 'seeds' must be int or None")])
def test_a_wrong_parameter_stops_the_notebook_at_its_first_cell(tmp_path, value, message):
    with pytest.raises(pipeline.ChapterError) as err:
        pipeline.execute("regimes", tmp_path / "book" / "mnist" / "regimes.ipynb",
                         {"dataset": "mnist", "profile": "smoke", "seeds": value, "results": str(tmp_path)},
                         root=tmp_path)
    text = str(err.value)
    assert "chapter 'regimes' (mnist) failed in cell" in text and "ParameterError" in text and message in text
    kept = tmp_path / "_build" / "failed" / "mnist-regimes.ipynb"
    assert kept.exists() and not (tmp_path / "book" / "mnist" / "regimes.ipynb").exists()
    executed = jupytext.read(kept)
    code = [c for c in executed.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "open_chapter" in code[-1].source  # the first cell after the parameters stopped it
