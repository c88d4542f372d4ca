import pytest
import torch

from minarch_core.engine import sweep, train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.store import Store


def configs(n_widths=3, seeds=2):
    return [RunConfig("mnist", "dnn", {"widths": [w]}, seed=s, epochs=1, val_per_class=10, train_per_class=10)
            for w in (2, 4, 8)[:n_widths] for s in range(seeds)]


@pytest.fixture
def bundles_trained(monkeypatch):
    """Every bundle train_bundle is given, as the run ids it holds."""
    calls = []
    real = train.train_bundle

    def counting(cfgs, *a, **kw):
        calls.append([c.run_id for c in cfgs])
        return real(cfgs, *a, **kw)
    monkeypatch.setattr(train, "train_bundle", counting)
    return calls


def test_serial_sweep_stores_every_run_and_reruns_train_nothing(tmp_path, tiny_root, bundles_trained):
    table = sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(table) == 6 and sum(map(len, bundles_trained)) == 6
    assert len(bundles_trained) == 2  # a CPU fuses a seed's three DNNs into one program
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = sweep.run(configs() + configs(), tmp_path, data_root=tiny_root)  # duplicates are one run
    assert len(bundles_trained) == 2
    assert sorted(again.run_id) == sorted(table.run_id)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == files  # no file rewritten


def test_an_interrupted_sweep_trains_only_what_is_missing(tmp_path, tiny_root, monkeypatch):
    broken, real, calls = configs()[3], train.train_bundle, []

    def flaky(cfgs, *a, **kw):  # the first attempt at one bundle dies; a restart succeeds
        calls.extend(c.run_id for c in cfgs)
        if broken in cfgs and calls.count(broken.run_id) == 1:
            raise RuntimeError("worker lost")
        return real(cfgs, *a, **kw)
    monkeypatch.setattr(train, "train_bundle", flaky)
    with pytest.raises(sweep.SweepError, match=f"(?s)3 of 6 runs failed .*{broken.run_id}.*worker lost"):
        sweep.run(configs(), tmp_path, data_root=tiny_root)
    assert len(Store(tmp_path).table()) == 3  # the other bundle completed and was stored
    assert len(sweep.run(configs(), tmp_path, data_root=tiny_root)) == 6
    lost = [c.run_id for c in configs() if c.seed == broken.seed]
    assert sorted(calls[6:]) == sorted(lost)  # the lost bundle, and nothing else


def test_what_an_interrupted_sweep_left_trains_as_the_bundles_it_still_forms(tmp_path, tiny_root, bundles_trained):
    every = configs(seeds=3)
    sweep.run(every[:2], tmp_path, data_root=tiny_root)  # width 2, seeds 0 and 1 stored
    sweep.run(every, tmp_path, data_root=tiny_root)
    trained = [sorted(b) for b in bundles_trained[1:]]
    assert sorted(map(len, trained)) == [1, 2, 2, 2]  # width 2 with seed 2 alone; widths 4 and 8 with each seed
    assert sum(map(len, trained)) == len(every) - 2  # a stored run is not retrained


def test_bundles_go_out_in_a_fixed_mixed_order(tmp_path, tiny_root, bundles_trained):
    """Mixed, so that the work done is a fair sample of the work left and the bar's time left holds; fixed, so
    that a sweep is scheduled the same way every time."""
    short = sweep.Limits(seconds=1e-9)  # one run per bundle
    given = [c.run_id for c in configs(seeds=1)]
    sweep.run(configs(seeds=1), tmp_path / "a", data_root=tiny_root, limits=short, progress=False)
    sweep.run(configs(seeds=1), tmp_path / "b", data_root=tiny_root, limits=short, progress=False)
    order = [b[0] for b in bundles_trained]
    assert order[:3] == order[3:] and sorted(order[:3]) == sorted(given) and order[:3] != given


def test_seeds_stack_where_their_family_says_so_and_every_family_stacks_on_cuda():
    mnist, cifar = (RunConfig(d, "dnn", {"widths": [10]}, seed=0) for d in ("mnist", "cifar10"))
    assert sweep.seeds_per_program(mnist, "cpu", 1) == 32  # 128 x 784 floats per seed: all the paper's 30 seeds
    assert sweep.seeds_per_program(cifar, "cpu", 1) == 10  # 128 x 3072 floats per seed: 10 seeds fill 16 MiB
    assert sweep.seeds_per_program(cifar.replace(batch_size=4096), "cpu", 1) == 1
    assert sweep.seeds_per_program(mnist, "cpu", 5) == 1  # a fused program of several architectures: one seed
    assert sweep.seeds_per_program(RunConfig("mnist", "cnn", {"channels": 4}), "cpu", 1) == 1
    tasks = sweep.bundles([cifar.replace(seed=s) for s in range(30)], "cpu")
    assert [len(b) for b in tasks] == [10, 10, 10]
    if torch.cuda.is_available():
        assert sweep.seeds_per_program(RunConfig("cifar10", "vit", {"dim": 8}), "cuda", 3) == sweep.SEED_BATCH


@pytest.mark.subprocess
def test_process_pool_sweep(tmp_path, tiny_root):
    with sweep.process_pool(2) as pool:
        table = sweep.run(configs(), tmp_path, executor=pool, data_root=tiny_root)
    assert len(table) == 6 and (table.status == "ok").all()
    serial = sweep.run(configs(), tmp_path / "serial", data_root=tiny_root).set_index("run_id")
    table = table.set_index("run_id").loc[serial.index]  # the same runs, and (up to thread-count rounding) results
    assert (table.test_acc - serial.test_acc).abs().max() <= 0.01
    assert ((table.train_loss - serial.train_loss).abs() <= 1e-4 * serial.train_loss).all()


@pytest.mark.subprocess
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


def test_time_left_prices_each_familys_bundles_at_its_own_rate():
    dnn, vit, cnn = (RunConfig("mnist", f, a) for f, a in (("dnn", {"widths": [4]}), ("vit", {"dim": 8}),
                                                           ("cnn", {"channels": 2})))
    left = [[dnn], [vit], [cnn]]
    cost = {id(left[0]): 1000.0, id(left[1]): 100.0, id(left[2]): 55.0}
    seen = {"dnn": [500.0, 5.0], "vit": [50.0, 5.0]}  # 100 and 10 FLOP/s; 550 / 10 s = 55 FLOP/s overall
    assert sweep._time_left(left, cost, seen, workers=2) == "00:10 left"  # (10 + 10 + 1) s over 2 workers
    assert sweep._time_left(left, cost, {}, workers=2) == "?"
