import pytest

from minarch_core import sweep, train
from minarch_core.config import RunConfig
from minarch_core.store import Store


def configs(n_widths=3, seeds=2):
    return [RunConfig("mnist", "dnn", {"widths": [w]}, seed=s, epochs=1, val_per_class=10, train_per_class=10)
            for w in (2, 4, 8)[:n_widths] for s in range(seeds)]


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = train.train

    def counting(cfg, *a, **kw):
        calls.append(cfg.run_id)
        return real(cfg, *a, **kw)
    monkeypatch.setattr(train, "train", counting)
    return calls


def test_serial_sweep_stores_every_run_and_reruns_train_nothing(tmp_path, tiny_root, count_training):
    table = sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(table) == 6 and len(count_training) == 6
    again = sweep.run(configs() + configs(), tmp_path, data_root=tiny_root)  # duplicates are one run
    assert len(count_training) == 6
    assert sorted(again.run_id) == sorted(table.run_id)


def test_an_interrupted_sweep_trains_only_what_is_missing(tmp_path, tiny_root, monkeypatch):
    broken, real, calls = configs()[3], train.train, []

    def flaky(cfg, *a, **kw):  # the first attempt at one run dies; a restart succeeds
        calls.append(cfg.run_id)
        if cfg.run_id == broken.run_id and calls.count(cfg.run_id) == 1:
            raise RuntimeError("worker lost")
        return real(cfg, *a, **kw)
    monkeypatch.setattr(train, "train", flaky)
    with pytest.raises(sweep.SweepError, match=f"(?s)1 of 6 runs failed .*{broken.run_id}.*worker lost"):
        sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(Store(tmp_path).table()) == 5  # every other run completed and was stored
    assert len(sweep.run(configs(), tmp_path, data_root=tiny_root)) == 6
    assert calls[6:] == [broken.run_id]


def test_process_pool_sweep(tmp_path, tiny_root):
    with sweep.process_pool(2) as pool:
        table = sweep.run(configs(), tmp_path, executor=pool, data_root=tiny_root)
    assert len(table) == 6 and (table.status == "ok").all()
    serial = sweep.run(configs(), tmp_path / "serial", data_root=tiny_root).set_index("run_id")
    table = table.set_index("run_id").loc[serial.index]  # the same runs, and (up to thread-count rounding) results
    assert (table.test_acc - serial.test_acc).abs().max() <= 0.01
    assert ((table.train_loss - serial.train_loss).abs() <= 1e-4 * serial.train_loss).all()


def test_dask_local_cluster_sweep(tmp_path, tiny_root):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        table = sweep.run(configs(seeds=1), tmp_path, executor=client.get_executor(), data_root=tiny_root)
    assert sorted(table.width) == [2, 4, 8]
    assert set(table.run_id) == {c.run_id for c in configs(seeds=1)}


def test_overview_pools_seeds(tmp_path, tiny_root):
    view = sweep.overview(sweep.run(configs(), tmp_path, data_root=tiny_root))
    assert view.width.tolist() == [2, 4, 8]
    assert (view.seeds == 2).all() and view.params.is_monotonic_increasing
    assert (view.test_min <= view.test_acc).all() and (view.test_acc <= view.test_max).all()
