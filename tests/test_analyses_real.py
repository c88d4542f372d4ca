"""The four analyses end to end on a small store of real MNIST runs: the shapes of the paper's claims."""
import pytest
from conftest import real_mnist

from minarch_core.analyses import pruning, quantization, regimes, tables
from minarch_core.engine import profiles, sweep
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.config import RunConfig
from minarch_core.engine.store import Store


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("real-store"))
    configs = [RunConfig("mnist", "dnn", {"widths": [w] * d}, seed=s, epochs=3, train_per_class=200)
               for w in (1, 64) for d in (1, 2) for s in (0, 1, 2)]
    sweep.run(configs, store, device="cpu", progress=False)
    return store


@real_mnist
def test_regimes_minimal_params_and_representatives(real_store):
    f = regimes.run_features(real_store.table("mnist"), real_store.histories("mnist"))
    c = regimes.configurations(f).set_index("width")
    assert not c.loc[1, "regime"].isin(regimes.LEARNS).any() and c.loc[64, "regime"].isin(regimes.LEARNS).all()
    m = regimes.minimal_params(f).iloc[0]
    assert m.bound == "exact" and 811 < m.min_params <= c.loc[64, "n_params"].min()
    reps = regimes.representatives(regimes.configurations(f), f, per_group=2, seeds=3)
    assert sorted(reps.depth) == [1, 1, 1, 2, 2, 2] and (reps.width == 64).all() and set(reps.seed) == {0, 1, 2}
    assert [r.run_id for r in real_store.runs_of(reps)] == reps.run_id.tolist()


@real_mnist
def test_pruning_and_quantization_on_real_models(real_store):
    run = real_store.get(RunConfig("mnist", "dnn", {"widths": [64, 64]}, seed=0, epochs=3, train_per_class=200))
    p = pruning.redundancy(pruning.curves([run], DEFAULT.pruning.only(sparsities=(0, 0.3, 0.6, 0.9, 0.99)))).iloc[0]
    assert p.dense_acc > 0.8 and p.redundancy >= 0.3 and p.collapse_at == 0.99
    grid = DEFAULT.quantization.only(precisions=("float32", 8, 4, 2))
    qc = quantization.tolerance(quantization.curves([run], grid)).iloc[0]
    assert abs(qc.drop_8bit) < 0.01 < qc.drop_2bit and qc.min_bits <= 8
    assert quantization.int8_crosscheck(run)["argmax_agreement"] > 0.999


@real_mnist
def test_both_hybrids_learn_real_mnist_and_the_frontier_and_recommend_include_them(tmp_path):
    grid = DEFAULT.replace(frontier={"sparsities": (0.0, 0.5), "precisions": ("float32", 8)},
                           recovery={"sparsities": (0.0,), "precisions": (4,), "epochs": 1})
    grids = {"convmlp": profiles.Grid("convmlp", (16,)), "convvit": profiles.Grid("convvit", (32,))}
    study = profiles.Profile("hybrids", seeds=2, epochs=8, train_per_class=200, val_per_class=50, compression=grid,
                             grids=grids)
    store = Store(tmp_path)
    table = sweep.run(study.configs("mnist"), store, device="cpu", progress=False)
    assert (table.groupby("family").test_acc.min() > 0.5).all()  # chance is 0.1
    at = tables.Where(store, study, "mnist", "cpu")
    assert set(tables.get("configurations", at).regime) <= set(regimes.LEARNS)
    assert set(tables.get("frontier", at).family) == {"convmlp", "convvit"}
    for family in ("convmlp", "convvit"):
        answer = tables.recommend(at, 0.4, family=family)
        assert answer.met and answer.row.family == family and answer.row.test_mean > 0.4
