"""The README and the manual (book/using, part of the book) hold only what is true: their commands are ones the
command line, papermill and make accept, their code names what the package defines, the plugin they show is the one
the book test builds, and the speed table is what the benchmarks printed."""
import ast
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

from minarch_core import cli
from minarch_core.book import benchmarks, pipeline
from minarch_core.book.parameters import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402

MANUAL = [ROOT / "book" / "using" / f"{page}.md" for page in pipeline.MANUAL]
DOCS = [ROOT / "README.md", *MANUAL]


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file (indented ones too)."""
    found = re.findall(r"^( *)```" + language + r"\n(.*?)^\1```", path.read_text(), re.S | re.M)
    return [re.sub(rf"^{indent}", "", body, flags=re.M) for indent, body in found]


def commands(tool: str) -> list[tuple[str, list[str]]]:
    """Every command line of ``tool`` in the docs' shell blocks: (where, its arguments), comments and line
    continuations resolved."""
    found = []
    for path in DOCS:
        for body in blocks(path, "bash"):
            for line in body.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words and Path(words[0]).name == tool:
                    found.append((path.name, words[1:]))
    return found


def test_the_readme_fits_two_screens_and_links_every_manual_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in MANUAL:
        assert f"]({page.relative_to(ROOT)})" in readme, f"the README does not link {page.name}"
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        assert link.startswith("http") or (ROOT / link).exists(), link


def test_every_minarch_command_shown_is_one_the_command_line_accepts(tmp_path, monkeypatch):
    (tmp_path / "leaves.npz").touch()  # the manual's own dataset: a name in the data root is one the command takes
    monkeypatch.setenv("MINARCH_DATA", str(tmp_path))
    shown = commands("minarch")
    assert len(shown) >= 12 and {words[0] for _, words in shown} >= {"sweep", "recommend", "export", "inspect",
                                                                       "table", "chapter"}
    for where, words in shown:
        try:
            args = cli.build_parser().parse_args(words)
        except SystemExit as stop:
            pytest.fail(f"{where}: `minarch {' '.join(words)}` is refused (exit {stop.code})")
        for name, _ in getattr(args, "parameter", []):  # a chapter's -p: a parameter that chapter takes
            assert name in CHAPTERS[args.name].parameters, f"{where}: chapter {args.name} takes no {name}"


def test_every_papermill_and_make_command_shown_exists():
    for where, words in commands("papermill"):
        notebook = ROOT / words[0]
        assert notebook.exists(), f"{where}: {words[0]}"
        names = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
        assert set(names) <= set(CHAPTERS[notebook.stem].parameters), f"{where}: {names}"
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    used = {m for path in DOCS for m in re.findall(r"`make ([a-z-]+)", path.read_text())}
    assert used >= {"book", "test", "test-fast", "lab", "benchmark"} and used <= targets, used - targets


def test_the_python_the_manual_shows_names_what_the_package_defines():
    snippets = [code for page in MANUAL for code in blocks(page, "python")]
    assert len(snippets) >= 3
    for code in snippets:
        tree = ast.parse(code)
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("minarch_core"):
                for alias in node.names:
                    modules[alias.asname or alias.name] = getattr(importlib.import_module(node.module), alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                assert hasattr(modules[node.value.id], node.attr), f"{node.value.id}.{node.attr} does not exist"


def test_the_plugin_the_manual_shows_is_the_one_the_book_test_builds():
    """tests/test_book.py builds a smoke book with tests/plugins/pooled.py: the manual shows that code."""
    shown = next(code for code in blocks(ROOT / "book" / "using" / "extending.md", "python") if "register" in code)
    source = (ROOT / "tests" / "plugins" / "pooled.py").read_text()
    strip = lambda text: ast.unparse([n for n in ast.parse(text).body if not (  # noqa: E731
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))])
    assert strip(shown) == strip(source)


def test_the_speed_table_is_generated_from_the_benchmark_outputs():
    assert report.block(ROOT) in (ROOT / report.PAGE).read_text(), "run python benchmarks/report.py"


def test_the_targets_parser_reads_both_benchmarks_formats():
    text = ("header, 2026-11-26 17:46 UTC, commit abc1234\nmachine: x86_64, 2 cores\n== targets (worst) ==\n"
            "competent loop, quick sweep                  5.04 (target 3): met\n"
            "quick book from an empty store, min             - (target 20): not measured (build it)\n")
    rows = benchmarks.targets(text)
    assert [(r["label"], r["value"], r["target"], r["verdict"]) for r in rows] == [
        ("competent loop, quick sweep", "5.04", "3", "met"),
        ("quick book from an empty store, min", "-", "20", "not measured (build it)")]
    assert benchmarks.where(text) == "x86_64, 2026-11-26, commit abc1234"


def test_a_benchmarks_section_says_whether_it_measured_the_code_the_book_was_built_from():
    text = ("speed.py, 2026-12-04 10:00 UTC, commit abc1234\nmachine: x86_64, 2 cores\n== targets ==\n"
            "competent loop, quick sweep                  2.22 (target 3): missed\n")
    same, older = benchmarks.output(text, "speed.py", "abc1234+dirty", "run it"), benchmarks.output(
        text, "speed.py", "def5678", "run it")
    assert "the same code" in same and "<td>competent loop, quick sweep</td><td>2.22</td>" in same
    assert "predates this build" in older and benchmarks.output("", "speed.py", "x", "run make benchmark") == \
        "<p>run make benchmark</p>"
    assert benchmarks.replay("a\nthe verdict", "phases", "run it").endswith("<p>In its words: the verdict.</p>")
