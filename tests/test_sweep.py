import pytest
import torch

from minarch_core.engine import sweep, train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.store import Store


def configs(n_widths=3, seeds=2):
    return [RunConfig("mnist", "dnn", {"widths": [w]}, seed=s, epochs=1, val_per_class=10, train_per_class=10)
            for w in (2, 4, 8)[:n_widths] for s in range(seeds)]


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = train.train_seeds

    def counting(cfgs, *a, **kw):
        calls.extend(c.run_id for c in cfgs)
        return real(cfgs, *a, **kw)
    monkeypatch.setattr(train, "train_seeds", counting)
    return calls


def test_serial_sweep_stores_every_run_and_reruns_train_nothing(tmp_path, tiny_root, count_training):
    table = sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(table) == 6 and len(count_training) == 6
    again = sweep.run(configs() + configs(), tmp_path, data_root=tiny_root)  # duplicates are one run
    assert len(count_training) == 6
    assert sorted(again.run_id) == sorted(table.run_id)


def test_an_interrupted_sweep_trains_only_what_is_missing(tmp_path, tiny_root, monkeypatch):
    broken, real, calls = configs()[3], train.train_seeds, []

    def flaky(cfgs, *a, **kw):  # the first attempt at one seed batch dies; a restart succeeds
        calls.extend(c.run_id for c in cfgs)
        if broken in cfgs and calls.count(broken.run_id) == 1:
            raise RuntimeError("worker lost")
        return real(cfgs, *a, **kw)
    monkeypatch.setattr(train, "train_seeds", flaky)
    with pytest.raises(sweep.SweepError, match=f"(?s)2 of 6 runs failed .*{broken.run_id}.*worker lost"):
        sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(Store(tmp_path).table()) == 4  # every other batch completed and was stored
    assert len(sweep.run(configs(), tmp_path, data_root=tiny_root)) == 6
    assert sorted(calls[6:]) == sorted(c.run_id for c in configs()[2:4])  # the lost batch, and nothing else


def test_seeds_of_a_configuration_train_together_in_batches_of_bounded_size(tmp_path, tiny_root, count_training,
                                                                           monkeypatch):
    batches = sweep.seed_batches(configs(seeds=5), 2)
    assert [len(b) for b in batches] == [2, 2, 1] * 3
    assert all(len({c.replace(seed=0).run_id for c in b}) == 1 for b in batches)
    sizes = []
    real = train.train_seeds
    monkeypatch.setattr(train, "train_seeds", lambda cfgs, *a, **kw: sizes.append(len(cfgs)) or real(cfgs, *a, **kw))
    sweep.run(configs(seeds=3)[:2], tmp_path, data_root=tiny_root)  # seed 2 of width 2 left out
    sweep.run(configs(seeds=3), tmp_path, data_root=tiny_root, seed_batch=2)
    assert sizes[0] == 2 and sorted(sizes[1:]) == [1, 1, 1, 2, 2]  # a stored seed is not retrained; a batch holds
    # at most seed_batch


def test_tasks_go_out_in_a_fixed_mixed_order(tmp_path, tiny_root, count_training):
    """Mixed, so that the runs done are a fair sample of those left and the bar's time left holds; fixed, so that
    a sweep is scheduled the same way every time."""
    given = [c.run_id for c in configs(seeds=1)]
    sweep.run(configs(seeds=1), tmp_path / "a", data_root=tiny_root, progress=False)
    sweep.run(configs(seeds=1), tmp_path / "b", data_root=tiny_root, progress=False)
    assert count_training[:3] == count_training[3:] and sorted(count_training[:3]) == sorted(given)
    assert count_training[:3] != given
    with pytest.raises(sweep.ConfigError, match="seed_batch must be an integer >= 1, got 0"):
        sweep.seed_batches(configs(), 0)


def test_default_seed_batch_keeps_a_cpu_step_cache_sized_and_stacks_every_family_on_cuda():
    mnist, cifar = (RunConfig(d, "dnn", {"widths": [10]}, seed=0) for d in ("mnist", "cifar10"))
    assert sweep.seed_batch_for(mnist, "cpu") == 32  # 128 x 784 floats per seed: all the paper's 30 seeds
    assert sweep.seed_batch_for(cifar, "cpu") == 10  # 128 x 3072 floats per seed: 10 seeds fill 16 MiB
    assert sweep.seed_batch_for(cifar.replace(batch_size=4096), "cpu") == 1
    assert sweep.seed_batch_for(RunConfig("mnist", "cnn", {"channels": 4}), "cpu") == 1
    batches = sweep.seed_batches([cifar.replace(seed=s) for s in range(30)], lambda cfg: sweep.seed_batch_for(cfg, "cpu"))
    assert [len(b) for b in batches] == [10, 10, 10]
    if torch.cuda.is_available():
        assert sweep.seed_batch_for(RunConfig("cifar10", "vit", {"dim": 8}), "cuda") == sweep.SEED_BATCH


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
