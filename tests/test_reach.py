"""A table's code fingerprint covers what computes it and nothing else: words never recompute a table, an edit to the
quantizer recomputes the tables that round weights and what reads them, and only those."""
import shutil
import textwrap
from pathlib import Path

import pytest

from minarch_core.analyses import reach, tables

PACKAGE = Path(tables.__file__).resolve().parents[1]
ROUND = {"variants", "frontier"}  # the tables whose own code rounds weights (grids.quantize)
BELOW = {"pruning", "redundancy", "matched_redundancy", "quantization", "tolerance", "compression", "recovery",
         "components", "component_ranking", "verdicts", "findings"}  # every table that reads one of them


def fingerprints(root: Path, monkeypatch) -> tuple[dict, dict]:
    """Each table's code hash and whole fingerprint with the package read from ``root`` (the runs fixed)."""
    package = reach.Package(root, "minarch_core")
    monkeypatch.setattr(tables, "_package", lambda: package)
    monkeypatch.setattr(tables, "_run_ids", lambda at: ["run-a", "run-b"])
    at = tables.Where(None, None, "mnist")
    codes = {name: tables.code(spec.make) for name, spec in tables.TABLES.items()}
    prints = {}
    for name, spec in tables.TABLES.items():
        prints[name] = tables.fingerprint(name, at.on(("mnist", "cifar10")) if spec.across else at)
    return codes, prints


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "minarch_core", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "minarch_core"


def test_rewording_every_docstring_and_comment_of_the_package_changes_no_fingerprint(copy, monkeypatch):
    before = fingerprints(PACKAGE, monkeypatch)
    paths = sorted(copy.rglob("*.py"))
    for path in paths:
        path.write_text(reach.reword(path.read_text()))
    assert all("Reworded" in p.read_text() for p in paths if '"""' in p.read_text())  # the edit did happen
    assert fingerprints(copy, monkeypatch) == before


def test_an_edit_to_the_quantizer_recomputes_the_tables_that_round_weights_and_their_readers_only(copy,
                                                                                                  monkeypatch):
    codes, prints = fingerprints(PACKAGE, monkeypatch)
    grids = copy / "analyses" / "grids.py"
    text = grids.read_text()
    anchor = "    if precision in FLOATS:\n        return w.to(FLOATS[precision]).to(w.dtype)\n"
    assert anchor in text
    grids.write_text(text.replace(anchor, "    w = w * 1.0\n" + anchor))
    codes2, prints2 = fingerprints(copy, monkeypatch)
    assert {name for name in codes if codes[name] != codes2[name]} == ROUND
    assert {name for name in prints if prints[name] != prints2[name]} == ROUND | BELOW
    assert BELOW == {name for name in tables.TABLES if tables._reads(name) & ROUND}


def test_an_edit_to_how_configurations_are_pooled_recomputes_that_table_and_its_readers_not_the_runs(copy,
                                                                                                      monkeypatch):
    codes, prints = fingerprints(PACKAGE, monkeypatch)
    regimes = copy / "analyses" / "regimes.py"
    anchor = "    g = features.groupby(GROUP, sort=False)\n"
    assert anchor in regimes.read_text()
    regimes.write_text(regimes.read_text().replace(anchor, anchor + "    g = g\n", 1))
    codes2, prints2 = fingerprints(copy, monkeypatch)
    changed = {name for name in prints if prints[name] != prints2[name]}
    assert "configurations" in changed and "runs" not in changed and "minimal" not in changed
    assert changed == {name for name in tables.TABLES if codes[name] != codes2[name] or tables._reads(name) & {
        n for n in codes if codes[n] != codes2[n]}}


def test_an_edit_to_the_dose_response_recomputes_the_minimal_sizes_not_the_runs_nor_the_measured_models(
        copy, monkeypatch):
    # the runs table reads the design's log, which the dose-response decides; the log's effect is the run ids in
    # the runs table's fingerprint, so the code behind it (``@reach.covered``) must not recompute every table
    _, prints = fingerprints(PACKAGE, monkeypatch)
    dose = copy / "analyses" / "dose.py"
    anchor = "    best = int(np.argmax(profile))\n"
    assert anchor in dose.read_text()
    dose.write_text(dose.read_text().replace(anchor, anchor + "    best = best\n"))
    _, prints2 = fingerprints(copy, monkeypatch)
    changed = {name for name in prints if prints[name] != prints2[name]}
    assert {"minimal", "minimal_draws", "sensitivity", "findings"} <= changed
    assert not changed & {"runs", "configurations", "representatives", "variants", "frontier"}


def package(tmp_path, **modules) -> reach.Package:
    root = tmp_path / "pkg"
    for name, text in modules.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return reach.Package(root, "pkg")


def test_reach_follows_the_package_names_and_not_a_parameter_that_hides_one(tmp_path):
    p = package(
        tmp_path,
        __init__="",
        helpers='''
            """Helpers."""
            import numpy as np
            LIMIT = 3

            def used(x):
                return np.clip(x, 0, LIMIT)

            def unused():
                return 1

            class Box:
                def size(self):
                    return used(2)
            ''',
        facade="from .helpers import used as exported\n",
        main='''
            from . import helpers, facade
            from .helpers import Box

            def hidden(used, unused):
                return used + unused  # parameters, not helpers' functions

            def direct():
                return helpers.used(1)

            def through():
                return facade.exported(1)

            def boxed() -> Box:
                return None

            def bare():
                return helpers
            ''')
    assert p.reach("pkg.main", "hidden") == {("pkg.main", "hidden"), ("pkg.main", reach.PROLOGUE)}
    reached = {"direct": {("pkg.helpers", "used"), ("pkg.helpers", "LIMIT")},
               "through": {("pkg.helpers", "used"), ("pkg.helpers", "LIMIT")},
               "boxed": {("pkg.helpers", "Box"), ("pkg.helpers", "used"), ("pkg.helpers", "LIMIT")},
               "bare": {("pkg.helpers", "used"), ("pkg.helpers", "LIMIT"), ("pkg.helpers", "unused"),
                        ("pkg.helpers", "Box")}}
    for name, want in reached.items():
        got = {k for k in p.reach("pkg.main", name) if k[1] != reach.PROLOGUE and k[0] != "pkg.main"}
        assert got == want, name
    with pytest.raises(KeyError, match="defines no 'missing'"):
        p.reach("pkg.main", "missing")
