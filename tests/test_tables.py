"""Analysis tables with declared inputs: computed from a store where only training ran, reused while their inputs
hold, computed again when an input changes and only then."""
import dataclasses
import functools
import re

import numpy as np
import pandas as pd
import pytest
import torch

from minarch_core import cli
from minarch_core.analyses import components, encoding, findings, frontier, pruning, quantization, regimes
from minarch_core.analyses import tables
from minarch_core.analyses import variants as variants_
from minarch_core.engine import data, profiles, progress, sweep, train
from minarch_core.engine.errors import ConfigError
from minarch_core.engine.store import Store

from conftest import synthetic_arrays

pytestmark = pytest.mark.slow  # each trains a small store and computes its tables: make test-fast leaves them out


@pytest.fixture
def trained(tmp_path, tiny_root):
    """A store holding only the training runs of a small study (two DNNs and a CNN, two seeds) on synthetic data."""
    study = profiles.get("smoke").replace(seeds=2, epochs=4, train_per_class=100, val_per_class=20, grids={
        "dnn": profiles.square((10, 32), (1,)), "cnn": profiles.Grid("cnn", (2,))})
    store = Store(tmp_path / "results")
    sweep.run(study.configs("mnist"), store, data_root=tiny_root, device="cpu", progress=False)
    return tables.Where(store, study, "mnist", "cpu", tiny_root)


def counting(monkeypatch):
    """Count each table's computations."""
    made = []
    for name, spec in list(tables.TABLES.items()):
        @functools.wraps(spec.make)  # the same code fingerprint
        def make(*args, _make=spec.make, _name=name):
            made.append(_name)
            return _make(*args)
        monkeypatch.setitem(tables.TABLES, name, dataclasses.replace(spec, make=make))
    return made


def test_every_table_reads_only_tables_and_none_reads_itself_back(monkeypatch):
    order = tables.order()
    assert set(order) == set(tables.TABLES)
    for name, spec in tables.TABLES.items():
        assert all(order.index(i) < order.index(name) for i in spec.inputs), name
    monkeypatch.setitem(tables.TABLES, "runs", tables.Table("runs", None, ("frontier",), 1))
    with pytest.raises(ConfigError, match="in a circle: .*runs -> .*frontier"):
        tables.order()
    with pytest.raises(ConfigError, match="unknown analysis table 'fronteer'"):
        tables.fingerprint("fronteer", None)


def test_a_table_is_computed_with_its_inputs_once_then_reused_and_recomputed_only_below_a_change(trained,
                                                                                                  monkeypatch):
    made = counting(monkeypatch)
    frontier = tables.get("frontier", trained)  # from a store where only training ran
    assert made == ["runs", "configurations", "frontier"] and frontier.finished.any()
    assert tables.get("frontier", trained).equals(frontier) and len(made) == 3  # stored and still current
    tables.get("redundancy", trained)
    assert made[3:] == ["representatives", "variants", "pruning", "redundancy"]  # runs and configurations reused
    spec = tables.TABLES["representatives"]  # what representatives computes changes: it and what reads it, again
    monkeypatch.setitem(tables.TABLES, "representatives", dataclasses.replace(spec, version=2))
    tables.get("redundancy", trained)
    tables.get("frontier", trained)
    assert made[7:] == ["representatives", "variants", "pruning", "redundancy"]  # the frontier reads none of them


def test_recommend_and_the_table_command_answer_on_a_store_where_only_training_ran(trained, capsys, monkeypatch):
    monkeypatch.setattr(cli.profiles, "study", lambda *a, **k: trained.study)  # the CLI's study: the small one
    args = ["--dataset", "mnist", "--results", str(trained.store.root), "--data", str(trained.data_root),
            "--device", "cpu"]
    code = cli.main(["recommend", *args, "--min-accuracy", "0.3", "--confidence", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "reaches 30.0% on mnist" in out and "the smallest variant whose own" in out
    assert "not measured" not in out
    assert cli.main(["table", "component_ranking", *args]) == 0 and "rank" in capsys.readouterr().out
    csv = trained.store.root / "configurations.csv"
    assert cli.main(["table", "configurations", *args, "--csv", str(csv)]) == 0
    assert csv.read_text().count("\n") == 1 + 3  # three configurations


def test_asking_on_a_store_without_the_runs_names_the_sweep(tmp_path):
    where = tables.Where(Store(tmp_path / "empty"), profiles.get("smoke"), "mnist")
    with pytest.raises(ConfigError, match=r"minarch sweep --dataset mnist --profile smoke, or make book"):
        tables.get("frontier", where)


def test_the_curve_slices_are_views_of_one_table_each_variant_measured_once(trained, monkeypatch):
    """The pruning curves, quantization curves and component sensitivity read from the compression table equal what
    each slice's own function computes on the same runs (weights, bytes and accuracies alike), and a variant that
    several slices ask for (the unpruned float32 model, a float cast in both settings) is evaluated once."""
    evaluated = []
    real = variants_.train.evaluate_states
    monkeypatch.setattr(variants_.train, "evaluate_states",
                        lambda model, states, *a, **k: evaluated.append(len(states)) or real(model, states, *a, **k))
    table, grid = tables.get("variants", trained), trained.grid
    reps = tables.get("representatives", trained)
    asked = variants_.requests(grid, reps, regimes.seed_runs(pruning.matched_bands(
        tables.get("configurations", trained)), tables.get("runs", trained)))
    whole = asked[asked.c_component == variants_.WHOLE].filter(like="c_").drop_duplicates()
    assert sum(evaluated) == len(whole) + (table.slice == "components").sum()  # each component variant is its own
    assert sum(evaluated) < len(table) and table.shared.any() and set(table.slice) >= {"pruning", "quantization"}
    runs = trained.store.runs_of(reps)
    options = {"device": "cpu", "data_root": trained.data_root}
    for name, theirs, keys in (
            ("pruning", pruning.curves(runs, grid.pruning, **options), ["run_id", "scope", "sparsity"]),
            ("quantization", quantization.curves(runs, grid.quantization, **options),
             ["run_id", "scheme", "granularity", "precision"]),
            ("components", components.table(runs, grid.components, **options), ["run_id", "component", "bits"])):
        mine = tables.get(name, trained)
        pd.testing.assert_frame_equal(mine.sort_values(keys, ignore_index=True)[list(theirs.columns)],
                                      theirs.sort_values(keys, ignore_index=True), check_dtype=False)


def test_the_curves_are_measured_on_one_stratified_subset_of_the_test_split(trained, monkeypatch):
    """A study whose grid asks for the curves on 10 test images per class (the synthetic test split holds 20): every
    variant measured on the same stratified images, a point equal to the variant measured by hand on them, and a
    grid that asks for more images than a class holds refused with the largest it may ask for."""
    at = dataclasses.replace(trained, study=trained.study.replace(compression=trained.grid.replace(
        curve_images=10, curve_seed=3)))
    assert at.study.study_id != trained.study.study_id
    seen, real = [], variants_.train.evaluate_states
    monkeypatch.setattr(variants_.train, "evaluate_states",
                        lambda model, states, split, *a, **k: seen.append(split) or real(model, states, split, *a, **k))
    table = tables.get("variants", at)
    assert set(table.split) == {"subset"} and len(seen) == table.run_id.nunique()
    assert all(torch.equal(s.x, seen[0].x) and torch.equal(s.y, seen[0].y) for s in seen)  # one set of images
    assert torch.bincount(seen[0].y).tolist() == [10] * 10
    row = table[(table.slice == "pruning") & (table.sparsity == 0.5) & (table.scope == "global")].iloc[0]
    run, = at.store.runs_of(row.to_frame().T)
    dataset = train.load_data(run.config, "cpu", at.data_root)
    model = run.model(dataset).eval()
    pruning.make_permanent(pruning.prune_to(model, 0.5, "global"))
    idx = torch.from_numpy(data.stratified_indices(dataset.test.y.numpy(), 10, 3))
    with torch.no_grad():
        by_hand = (model(dataset.test.x[idx]).argmax(1) == dataset.test.y[idx]).double().mean().item()
    assert row.acc == pytest.approx(by_hand) and (dataset.test.y[idx] == seen[0].y).all()
    big = dataclasses.replace(trained, study=trained.study.replace(compression=trained.grid.replace(curve_images=21)))
    with pytest.raises(ConfigError, match="curve_images: 21 test images per class, but the test split of mnist "
                                          "holds 20 of its smallest class: the largest allowed is 20"):
        tables.get("variants", big)


def test_fine_tuned_weights_are_stored_with_their_table_and_rebuild_its_variants(trained):
    at = tables.Where(trained.store, trained.study.replace(compression=trained.grid.replace(
        pruning={"epochs": 1, "sparsities": (0.0, 0.5)})), "mnist", "cpu", trained.data_root)
    stored = at.store.tables(at.study)
    curves = tables.get("pruning", at)
    tuned = stored.weights("mnist", "variants")
    assert set(tuned) == {f"{r}/{scope}/0.5/1" for r in curves.run_id.unique() for scope in at.grid.pruning.scopes}
    front = tables.get("frontier", at)
    aware = front[front.method == "quantization-aware"]
    weights = stored.weights("mnist", "frontier")
    assert set(weights) == {f"{r.run_id}/{r.sparsity:g}/{r.precision}" for r in aware.itertuples()}
    r = aware.iloc[-1]
    run, = at.store.runs_of(aware.iloc[[-1]])
    model = run.model(train.load_data(run.config, "cpu", at.data_root))
    model.load_state_dict(weights[f"{r.run_id}/{r.sparsity:g}/{r.precision}"])
    assert encoding.size(model, int(r.precision), scheme=r.scheme, granularity=r.granularity) == r.size_bytes
    assert pruning.sparsity_of(model) == pytest.approx(r.achieved)


def test_a_test_accuracy_measured_on_demand_reaches_the_tables_read_from_the_frontier(trained):
    front = tables.get("frontier", trained)
    tables.get("compression", trained)
    todo = front[front.test_acc.isna()].iloc[[0]]
    done = frontier.complete(front, trained.store, todo, device="cpu", data_root=trained.data_root, progress=False)
    tables.amend("frontier", trained, done)
    both = tables.get("compression", trained)
    post = done[done.method == "post-training"]
    assert post.test_acc.notna().sum() > front[front.method == "post-training"].test_acc.notna().sum()
    assert both.loc[both.slice == "frontier", "test_acc"].notna().sum() == post.test_acc.notna().sum()


def test_the_findings_are_one_table_across_datasets_made_from_each_datasets_tables(trained, tmp_path, monkeypatch):
    """The findings table reads each input of every dataset it is asked of, stacked; it is reused while all of them
    hold, and made again when one dataset's input changes (a test accuracy measured on demand included)."""
    root = tmp_path / "two"
    root.mkdir()
    for name in ("mnist", "fashion_mnist"):
        np.savez(root / f"{name}.npz", **synthetic_arrays())
    sweep.run(trained.study.configs("fashion_mnist"), trained.store, data_root=root, device="cpu", progress=False)
    both = dataclasses.replace(trained, dataset=("mnist", "fashion_mnist"), data_root=root)
    made = counting(monkeypatch)
    claims = tables.get("findings", both)
    inputs = [pd.concat([tables.get(i, both.on(d)).assign(dataset=d) for d in both.datasets], ignore_index=True)
              for i in tables.TABLES["findings"].inputs]
    pd.testing.assert_frame_equal(claims, findings.all_claims(*inputs))
    assert made.count("findings") == 1 and made.count("frontier") == 2  # each dataset's, once
    assert tables.get("findings", both).equals(claims) and made.count("findings") == 1  # stored and still current
    assert (trained.store.tables(trained.study).folder / "mnist+fashion_mnist" / "findings.parquet").exists()
    front = tables.get("frontier", both.on("fashion_mnist"))
    todo = front[front.test_acc.isna()].iloc[[0]]
    tables.amend("frontier", both.on("fashion_mnist"), frontier.complete(front, trained.store, todo, device="cpu",
                                                                          data_root=root, progress=False))
    tables.get("findings", both)
    assert made.count("findings") == 2 and made.count("frontier") == 2  # the amended table is read, not remade
    with pytest.raises(ConfigError, match="'frontier' is a table of one dataset: ask it of one, not of"):
        tables.get("frontier", both)
    monkeypatch.setattr(cli.profiles, "study", lambda *a, **k: trained.study)
    csv = tmp_path / "findings.csv"
    assert cli.main(["table", "findings", "--dataset", "mnist", "--dataset", "fashion_mnist", "--results",
                     str(trained.store.root), "--data", str(root), "--device", "cpu", "--csv", str(csv)]) == 0
    assert pd.read_csv(csv).verdict.tolist() == claims.verdict.tolist()


def test_the_tables_a_build_computes_ahead_show_live_progress_two_at_a_time(trained, capsys, monkeypatch):
    """Each heavy table reports its phases from its worker process (done of total, time left), shown as lines in a
    log, and says when it is done."""
    monkeypatch.setenv("MINARCH_PROGRESS", "1")  # the tests' default is 0: only the done lines
    monkeypatch.setattr(tables.progress, "Board", functools.partial(tables.progress.Board, every=0.05, live=False))
    timings = tables.compute(trained.study, ["mnist"], trained.store, workers=2, device="cpu",
                             data_root=trained.data_root)
    out = capsys.readouterr().out
    assert [t["chapter"] for t in timings] == ["frontier table", "variants table"]  # the larger first
    assert "the 2 analysis tables that measure models, 2 at a time" in out
    assert re.search(r"variants table — MNIST: curves \d/4 models", out), out
    assert re.search(r"frontier table — MNIST: frontier, racing \d+/\d+ model-stages", out), out
    for name in ("variants", "frontier"):
        assert re.search(rf"{name} table — MNIST: done in \d+\.\d s", out)


def test_a_progress_report_says_how_far_and_how_long_is_left(tmp_path):
    path = tmp_path / "task.json"
    assert progress.describe(progress.read(path)) == "waiting"
    with progress.to_file(path), progress.bar("curves", 10, "models") as bar:
        bar.update(4)
        bar.refresh()
        report = progress.read(path)
    assert report["done"] == 4 and report["total"] == 10 and report["phase"] == "curves"
    report = dict(report, start=report["now"] - 40.0)
    assert progress.describe(report, now=report["now"]) == "curves 4/10 models, about 60 s left"
    assert progress.describe(dict(report, start=report["now"] - 400.0), now=report["now"]).endswith("about 10 min left")
    assert not path.with_name(".task.json.tmp").exists()
