"""Analysis tables with declared inputs: computed from a store where only training ran, reused while their inputs
hold, computed again when an input changes and only then."""
import pytest

from minarch_core import cli
from minarch_core.analyses import tables
from minarch_core.engine import profiles, sweep
from minarch_core.engine.errors import ConfigError
from minarch_core.engine.store import Store


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
        def make(*args, _make=spec.make, _name=name):
            made.append(_name)
            return _make(*args)
        monkeypatch.setitem(tables.TABLES, name, spec.__class__(spec.name, make, spec.inputs, spec.version))
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
    assert made[3:] == ["representatives", "pruning", "redundancy"]  # runs and configurations reused
    spec = tables.TABLES["representatives"]  # what representatives computes changes: it and what reads it, again
    monkeypatch.setitem(tables.TABLES, "representatives", spec.__class__(spec.name, spec.make, spec.inputs, 2))
    tables.get("redundancy", trained)
    tables.get("frontier", trained)
    assert made[6:] == ["representatives", "pruning", "redundancy"]


def test_recommend_and_the_table_command_answer_on_a_store_where_only_training_ran(trained, capsys, monkeypatch):
    monkeypatch.setattr(cli.profiles, "study", lambda *a, **k: trained.study)  # the CLI's study: the small one
    args = ["--dataset", "mnist", "--results", str(trained.store.root), "--data", str(trained.data_root),
            "--device", "cpu"]
    code = cli.main(["recommend", *args, "--min-accuracy", "0.3", "--confidence", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "smallest model reaching 30.0%" in out and "not measured" not in out
    assert cli.main(["table", "component_ranking", *args]) == 0 and "rank" in capsys.readouterr().out
    csv = trained.store.root / "configurations.csv"
    assert cli.main(["table", "configurations", *args, "--csv", str(csv)]) == 0
    assert csv.read_text().count("\n") == 1 + 3  # three configurations


def test_asking_on_a_store_without_the_runs_names_the_sweep(tmp_path):
    where = tables.Where(Store(tmp_path / "empty"), profiles.get("smoke"), "mnist")
    with pytest.raises(ConfigError, match=r"minarch sweep --dataset mnist --profile smoke, or make book"):
        tables.get("frontier", where)
