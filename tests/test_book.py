"""End to end: the smoke-profile book for every dataset, executed by papermill and built by Jupyter Book, then
opened in headless Chromium with the network blocked."""
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import every_dataset

from minarch_core.book import pipeline
from minarch_core.book.parameters import CHAPTERS
from minarch_core.engine import data, profiles
from minarch_core.engine.store import Store

DATASETS = list(data.DATASETS)
pytestmark = [pytest.mark.book, every_dataset]
FIGURES = ("phase1", "families", "phase2", "sensitivity", "learning_curves", "pruning", "redundancy", "quantization",
           "frontier", "question", "components")
PAGES = [f"book/{d}/{c}.html" for d in DATASETS for c in pipeline.PER_DATASET] + \
        [f"book/{c}.html" for c, spec in CHAPTERS.items() if not spec.per_dataset] + ["book/intro.html"] + \
        [f"book/using/{page}.html" for page in pipeline.MANUAL]


@pytest.fixture(scope="module")
def book(smoke_book):
    return smoke_book


def test_every_chapter_page_and_figure_is_built(book):
    root, html = book
    for page in PAGES:
        assert (html / page).exists(), page
    assert (html / "figures" / "method" / "workflow.svg").exists()
    assert (html / "figures" / "findings" / "summary.png").exists()
    for dataset in DATASETS:
        for figure in FIGURES:
            for ext in ("svg", "png"):
                assert (html / "figures" / dataset / f"{figure}.{ext}").stat().st_size > 1000
    info = json.loads((root / "book" / "build-info.json").read_text())
    assert info["profile"] == "smoke" and info["datasets"] == DATASETS and info["commit"]
    assert info["runs_trained"] == info["runs"] > 0  # from an empty store, so the benchmark's record of one is it
    assert json.loads((root / "book" / pipeline.EMPTY_STORE_RECORD).read_text()) == info
    reproducing = (html / "book" / "reproducing.html").read_text()
    assert info["commit"].split("+")[0] in reproducing and "smoke" in reproducing
    findings = (html / "book" / "findings.html").read_text()
    assert "the paper" in findings and "verdict" in findings
    assert (html / "figures" / "findings" / "frontiers.svg").exists()
    archive = next((html / "figures" / "reproducing").glob("smoke-*.zip"))  # named by the study's identity
    assert f"../figures/reproducing/{archive.name}" in reproducing
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        runs = pd.read_parquet(io.BytesIO(z.read("runs.parquet")))
    assert {"runs.parquet", "histories.parquet", "study.json", "mnist/frontier.parquet"} <= names
    assert len(runs) == sum(len(profiles.get("smoke").configs(d)) for d in DATASETS)
    for dataset in DATASETS:
        assert "the smallest variant whose own" in (html / "book" / dataset / "smallest.html").read_text() or \
            "no stored variant" in (html / "book" / dataset / "smallest.html").read_text()


def stored_runs(store) -> dict:
    """Every file of every stored run: its bytes' hash and its modification time (a retrain that wrote the same
    names, or even the same bytes, changes the time)."""
    files = [f for run in store.glob("*/[0-9a-f]*") for f in ([run] if run.is_file() else run.rglob("*"))
             if f.is_file()]
    return {str(f.relative_to(store)): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
            for f in files}


def test_rerunning_a_chapter_trains_nothing(book):
    root, _ = book
    store = root / "results"
    before = stored_runs(store)
    assert len(before) > 0
    pipeline.execute("sweep", root / "again.ipynb", {"dataset": "mnist", "profile": "smoke", "results": str(store)},
                     root=root)
    assert stored_runs(store) == before


def test_a_failed_build_keeps_the_last_good_book(book, monkeypatch):
    root, html = book
    index = (html / "index.html").read_bytes()
    toc = pipeline.table_of_contents(DATASETS)
    toc["parts"][0]["chapters"].append({"file": "book/no-such-chapter"})
    monkeypatch.setattr(pipeline, "table_of_contents", lambda datasets: toc)
    with pytest.raises(pipeline.ChapterError, match="jupyter-book build failed"):
        pipeline.compile_html(DATASETS, root)
    assert (html / "index.html").read_bytes() == index


def test_a_chapter_that_fails_inside_a_full_build_is_named_and_the_last_book_stays(book, tmp_path):
    root = tmp_path / "book"  # a copy: the failed build rewrites the sources the other tests read
    shutil.copytree(book[0], root, symlinks=True)
    html = root / "_build" / "html"
    files = lambda: {str(p.relative_to(html)): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                     for p in sorted(html.rglob("*")) if p.is_file()}
    before = files()
    damaged = Store(root / "results").tables(profiles.get("smoke")).path("mnist", "sensitivity")
    damaged.write_bytes(b"not a parquet file")  # only the regimes chapter reads it, still under its fingerprint
    with pytest.raises(pipeline.ChapterError, match=r"(?s)chapter 'regimes' \(mnist\) failed in cell \d+: \w+.*"
                                                    r"the executed notebook is kept at .*the previous book is "
                                                    r"untouched"):
        pipeline.build("smoke", ["mnist"], results=str(root / "results"), root=root)
    assert files() == before  # byte for byte: no page, figure or archive of the failed build replaced the last one


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them when it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):  # no network at all
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()  # axe-core 4.12.1 (tests/vendor/README.md)
WIDTHS = """
const column = document.querySelector('article.bd-article p');  // the text column: a paragraph's width
const limit = column.getBoundingClientRect().width + 1;
const wide = [...document.querySelectorAll('.minarch-chart svg.marks, table')]
  .map(e => [e.closest('.minarch-chart') ? 'chart' : 'table', Math.round(e.getBoundingClientRect().width),
             Math.round(e.scrollWidth || 0)])
  .filter(([kind, width, scroll]) => width > limit || scroll > limit);
const scrolled = [...document.querySelectorAll('article pre')]  // prose and outputs; folded code may scroll
  .filter(p => p.offsetParent !== null && !p.closest('.cell_input'))
  .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => ['code', p.clientWidth, p.scrollWidth]);
return [Math.round(limit), wide.concat(scrolled)];
"""


@pytest.mark.browser
def test_pages_read_as_a_reader_reads_them(book, browser):
    """Offline, every chart renders with no console error; each dataset page names its dataset in its title and
    heading; no papermill parameter cell and no machine path reach a page; no chart, table or visible code block
    is wider than the text column."""
    from selenium.webdriver.support.ui import WebDriverWait
    root, html = book
    shots = root / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    total = 0
    for page in PAGES:
        text = (html / page).read_text()
        assert str(root) not in text and "/tmp/" not in text and str(Path.home()) + "/" not in text, \
            f"{page} shows a machine path"
        assert "# Parameters" not in text and "injected-parameters" not in text, f"{page} shows papermill's cell"
        browser.get((html / page).as_uri())
        WebDriverWait(browser, 20).until(lambda b: b.execute_script(
            "return [...document.querySelectorAll('.minarch-chart')]"
            ".every(d => d.querySelector('svg.marks'))"), message=f"charts did not render on {page}")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"{page}: {errors}"
        parts = page.split("/")
        if len(parts) == 3 and parts[1] in DATASETS:  # book/<dataset>/<chapter>.html (book/using/: the manual)
            title = data.spec(parts[1]).title
            heading = browser.execute_script("return document.querySelector('article h1').textContent")
            assert title in browser.title and title in heading, f"{page}: {browser.title!r} / {heading!r}"
        limit, wide = browser.execute_script(WIDTHS)
        assert not wide, f"{page}: wider than the {limit}-pixel text column: {wide}"
        if "minarch-chart" in text:  # axe-core: every chart named for screen readers, and its actions menu
            browser.execute_script(AXE)
            found = browser.execute_async_script(
                "const done = arguments[arguments.length - 1]; axe.run(document.querySelectorAll('.minarch-chart'),"
                " {runOnly: ['svg-img-alt', 'summary-name', 'role-img-alt']}).then(r => done(r.violations"
                ".map(v => v.id + ': ' + v.nodes.length + ' ' + v.nodes[0].html.slice(0, 120))));")
            assert not found, f"{page}: {found}"
        browser.save_screenshot(str(shots / (page.replace("/", "-") + ".png")))
        total += browser.execute_script("return document.querySelectorAll('.minarch-chart').length")
    browser.set_window_size(1200, 2000)  # a laptop window, where the column is narrowest: each figure scales to it
    try:
        for page in PAGES[:len(pipeline.PER_DATASET)] + ["book/method.html", "book/findings.html"]:
            browser.get((html / page).as_uri())
            WebDriverWait(browser, 20).until(lambda b: b.execute_script(
                "return [...document.querySelectorAll('.minarch-chart')].every(d => d.querySelector('svg.marks'))"))
            limit, wide = browser.execute_script(WIDTHS)
            assert not wide, f"{page} at 1,200 px: wider than the {limit}-pixel text column: {wide}"
    finally:
        browser.set_window_size(1400, 2000)
    saved = len(list((html / "figures").rglob("*.svg")))
    assert total == saved >= len(FIGURES) * len(DATASETS) + 2  # every figure shown once and saved once


def test_repository_buttons_follow_the_one_url_setting(tmp_path):
    config = yaml.safe_load((pipeline.ROOT / "_config.yml").read_text())
    assert not config["repository"]["url"]  # a fork sets it; until then the buttons that need it are hidden
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    assert pipeline.book_config(tmp_path)["html"] == {"use_repository_button": False, "use_issues_button": False}
    config["repository"]["url"] = "https://github.com/someone/minarch"
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    assert pipeline.book_config(tmp_path)["html"] == {"use_repository_button": True, "use_issues_button": True}


def test_every_link_of_every_page_leads_to_a_built_file(book):
    """Relative links (chapters, downloads, figures) resolve inside the built book: none to a 'nan/' page."""
    import re
    from urllib.parse import unquote, urlsplit
    _, html = book
    broken = []
    for page in PAGES:
        text = (html / page).read_text()
        for href in re.findall(r"""(?:href|src)=["']([^"'#?]+)""", text):
            if urlsplit(href).scheme or href.startswith(("//", "mailto:")):
                continue
            if not ((html / page).parent / unquote(href)).resolve().exists():
                broken.append(f"{page}: {href}")
    assert not broken, broken


QUESTION = """
const chart = [...document.querySelectorAll('.minarch-chart')].find(  // labelled by its description
  c => c.querySelector('[aria-label^="Every variant"]'));
const [target, family, budget] = [chart.querySelector('input[type=range]'), ...chart.querySelectorAll('select')];
target.value = arguments[0]; target.dispatchEvent(new Event('input', {bubbles: true}));
family.value = arguments[1]; family.dispatchEvent(new Event('change', {bubbles: true}));
budget.selectedIndex = arguments[2]; budget.dispatchEvent(new Event('change', {bubbles: true}));
return [...budget.options].map(o => o.textContent);
"""
ANSWER = """
const chart = [...document.querySelectorAll('.minarch-chart')].find(  // labelled by its description
  c => c.querySelector('[aria-label^="Every variant"]'));
if (!chart) return [null, ''];
const ring = chart.querySelector('g[class*=answer_ring] path[aria-label]');
return [ring ? ring.getAttribute('aria-label') : null,
        [...chart.querySelectorAll('g.answer_text_marks text')].map(t => t.textContent).join(' ')];
"""


@pytest.mark.browser
def test_the_question_chart_answers_every_question_as_recommend_does(book, browser):
    """In the page, with no kernel: every target the chapter lists, asked of every family and of all, rings the
    variant `recommend` answers with on the same store; its controls are labelled for screen readers."""
    from selenium.webdriver.support.ui import WebDriverWait
    from minarch_core.analyses import frontier, tables as analysis
    root, html = book
    store = Store(str(root / "results"))
    for dataset in DATASETS:
        table = analysis.get("frontier", analysis.Where(store, profiles.study("smoke"), dataset))
        summary = frontier.summarise(table)
        browser.get((html / "book" / dataset / "smallest.html").as_uri())
        WebDriverWait(browser, 20).until(lambda b: b.execute_script(ANSWER)[0], message=f"{dataset}: no answer")
        browser.execute_script(AXE)
        found = browser.execute_async_script(
            "const done = arguments[arguments.length - 1]; axe.run(document.querySelectorAll('.vega-bindings'),"
            " {runOnly: ['label', 'select-name']}).then(r => done(r.violations.map(v => v.id)));")
        assert not found, f"{dataset}: {found}"
        families = ["all", *sorted(set(frontier.candidates(summary).family))]
        budgets = browser.execute_script(QUESTION, 0.5, "all", 0)  # the byte budget's options, "no limit" first
        goals = frontier.targets(summary, dataset)
        questions = [(goal, family, 0) for goal in goals for family in families] + [
            (goals[len(goals) // 2], "all", i) for i in range(1, len(budgets))]
        assert len(budgets) > 1 and budgets[0] == "no limit"
        for goal, family, budget in questions:
            limit = int(budgets[budget].split()[0].replace(",", "")) if budget else None
            answer = frontier.recommend(table, goal, family=None if family == "all" else family, max_bytes=limit)
            r = answer.row
            expected = f"{r.config_id}|{r.method}|{r.sparsity}|{r.precision}"
            browser.execute_script(QUESTION, goal, family, budget)
            try:
                WebDriverWait(browser, 5).until(lambda b: b.execute_script(ANSWER)[0] == expected)
            except Exception:
                pytest.fail(f"{dataset}, {goal:.0%}, {family}, budget {limit}: the page rings "
                            f"{browser.execute_script(ANSWER)}, recommend answers {expected}")
            said = browser.execute_script(ANSWER)[1]
            assert ("Smallest reaching" in said) is answer.met and f"{int(r.size_bytes):,} bytes" in said
