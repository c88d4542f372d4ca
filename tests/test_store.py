import json

import pytest
import torch

from minarch_core.engine import train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import StoreError
from minarch_core.engine.store import Store


@pytest.fixture
def trained(tiny_root):
    cfg = RunConfig("mnist", "dnn", {"widths": [8]}, epochs=1, val_per_class=10, train_per_class=10)
    return cfg, train.train(cfg, train.load_data(cfg, root=tiny_root), "cpu")


def test_put_then_get_returns_the_same_run(tmp_path, trained):
    cfg, result = trained
    store = Store(tmp_path)
    assert store.get(cfg) is None
    store.put(cfg, result, "cpu")
    run = store.get(cfg)
    assert run.config == cfg and run.run_id == cfg.run_id
    assert run.history.equals(result.history)
    assert all(torch.equal(run.state_dict()[k], v) for k, v in result.state_dict.items())
    assert run.summary["status"] == "ok" and run.summary["n_params"] == result.n_params
    assert not any((tmp_path / "mnist" / ".tmp").iterdir())  # nothing half-written left behind


def test_a_run_stored_twice_is_kept_once(tmp_path, trained):
    cfg, result = trained
    store = Store(tmp_path)
    first = store.put(cfg, result)
    second = store.put(cfg, result)
    assert first.path == second.path
    assert len(store.table()) == 1


def test_table_has_config_derived_and_metric_columns(tmp_path, tiny_root):
    store = Store(tmp_path)
    for widths, seed in (([8], 0), ([8], 1), ([4, 4], 0)):
        cfg = RunConfig("mnist", "dnn", {"widths": widths}, seed=seed, epochs=1, val_per_class=10, train_per_class=5)
        store.put(cfg, train.train(cfg, train.load_data(cfg, root=tiny_root), "cpu"))
    t = store.table("mnist").sort_values(["depth", "seed"])
    assert len(t) == 3
    assert t[["depth", "width", "widths", "shape", "seed"]].values.tolist() == [
        [1, 8, "8", "equal", 0], [1, 8, "8", "equal", 1], [2, 4, "4-4", "equal", 0]]
    assert t.config_id.nunique() == 2  # seeds of one configuration share it
    for column in ("run_id", "n_params", "test_acc", "best_val_acc", "status", "epochs", "lr", "torch"):
        assert column in t


@pytest.mark.parametrize("damage", ["drop_weights", "garble_config", "rehash_config", "truncate_history",
                                    "truncate_weights", "garble_summary"])
def test_a_corrupt_record_is_set_aside_and_reported(tmp_path, trained, damage):
    cfg, result = trained
    store = Store(tmp_path)
    path = store.put(cfg, result).path
    if damage == "drop_weights":
        (path / "model.pt").unlink()
    elif damage == "garble_config":
        (path / "config.json").write_text("{not json")
    elif damage == "rehash_config":
        (path / "config.json").write_text(json.dumps({**cfg.to_dict(), "seed": 7}))
    elif damage == "garble_summary":
        (path / "summary.json").write_text('{"status": "ok", "n_par')
    else:  # a write cut short: the first half of the file only
        file = path / ("history.parquet" if damage == "truncate_history" else "model.pt")
        file.write_bytes(file.read_bytes()[:file.stat().st_size // 2])
    with pytest.warns(UserWarning, match=f"corrupt run record .*{cfg.run_id}"):
        assert store.get(cfg) is None
    assert not path.exists()
    assert len(list((tmp_path / "mnist" / ".corrupt").iterdir())) == 1  # kept for inspection, not deleted
    store.put(cfg, result)
    assert store.get(cfg) is not None


def test_unwritable_results_root_is_a_clear_error_and_changes_nothing(tmp_path, trained):
    cfg, result = trained
    (tmp_path / "mnist").write_text("a file where the dataset folder belongs")
    with pytest.raises(StoreError, match="cannot write run .* the store is unchanged"):
        Store(tmp_path).put(cfg, result)
    assert (tmp_path / "mnist").read_text() == "a file where the dataset folder belongs"


def test_a_store_of_another_format_is_refused(tmp_path):
    (tmp_path / "minarch-store.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(StoreError, match="format 99, this minarch reads format 1"):
        Store(tmp_path)


def test_runs_of_a_frame_and_a_clear_error_for_missing_ones(tmp_path, trained):
    import pandas as pd
    cfg, result = trained
    store = Store(tmp_path)
    store.put(cfg, result)
    assert [r.config for r in store.runs_of(pd.DataFrame({"dataset": ["mnist"], "run_id": [cfg.run_id]}))] == [cfg]
    with pytest.raises(KeyError, match="runs \\['0000'\\] are not in the store"):
        store.runs_of(pd.DataFrame({"dataset": ["mnist"], "run_id": ["0000"]}))
