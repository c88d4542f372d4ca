"""Bundles: many architectures trained as one program give each run what training it alone gives.

The oracle is the plain single-model loop (``test_train.plain_loop``: ``train_epoch`` and ``evaluate``). A fused
product sums in another order than a solo one, so the two agree only up to rounding. In float64 that is the whole
difference: after two epochs on real data every weight agrees to 1e-12 (relative; measured 6e-15), which shows the
fused program computes each member's own training exactly. In float32, as runs train, rounding differences of 1e-7
are amplified by training's own dynamics: a pre-activation that rounding moves across ReLU's kink switches a unit
for one image, and Adam, which normalises every step to about lr, turns that into lr-sized weight differences
(measured after 16 steps: a 500-500 DNN's weights 2.4e-3 apart in relative norm, a 1000-wide one's 4.3e-4, most
others below 1e-5; histories within one image). So float32 runs are held to that: weights within 1e-2 in relative
norm, histories within 1e-3 (losses, relative) and two images (accuracies).
"""
import json
import math

import pytest
import torch
from conftest import real_mnist
from test_train import plain_loop

from minarch_core.engine import data, fused, models, profiles, sweep, train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError

REAL = dict(epochs=2, train_per_class=100, val_per_class=50)
DNN_SHAPES = [list(w) for w in dict.fromkeys([  # depths 1-4, widths 1-1000, Phase-1 step patterns
    (1,), (3, 5), (10, 10, 10, 10), (1000,), (100, 200, 500), (30, 20, 10), (500, 500), (2, 1, 1),
    *(s.widths for s in models.phase1_shapes(depths=(2, 3), sizes=(3, 100)))])]
TOLERANCE = {torch.float64: dict(weights=1e-12, loss=1e-6, images=0), torch.float32: dict(weights=1e-2, loss=1e-3,
                                                                                          images=2)}


def assert_as_alone(result, cfg, dataset, dtype=torch.float32):
    tol = TOLERANCE[dtype]
    history, final, state = plain_loop(cfg, dataset)
    monitor = dataset.monitor(train.MONITOR_PER_CLASS)
    cols = [c for c in result.history if c not in ("epoch", "time_s")]
    got = torch.tensor(result.history[cols].to_numpy())
    for j, col in enumerate(cols):  # histories are measured in float32 (their losses summed as such)
        split = len(getattr(monitor, col.split("_")[0]))
        if col.endswith("_acc"):
            torch.testing.assert_close(got[:, j], history[:, j], rtol=0, atol=tol["images"] / split + 1e-6)
        else:
            torch.testing.assert_close(got[:, j], history[:, j], rtol=tol["loss"], atol=1e-6)
    assert result.history.epoch.tolist() == list(range(cfg.epochs + 1))
    assert list(result.state_dict) == list(state)
    for key, solo in state.items():
        apart = ((result.state_dict[key] - solo).norm() / solo.norm()).item()
        assert apart <= tol["weights"], f"{cfg.arch} {key}: {apart:.1e} apart in relative norm"


def in_dtype(dataset, dtype):
    return data.Dataset(dataset.name, *(data.Split(getattr(dataset, s).x.to(dtype), getattr(dataset, s).y)
                                        for s in ("train", "val", "test")), dataset.n_classes)


@real_mnist
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("family, archs", [
    ("dnn", [{"widths": w} for w in DNN_SHAPES]),
    ("cnn", [{"channels": c} for c in (1, 2, 7, 32)]),
])
def test_a_bundle_gives_each_member_what_training_it_alone_gives(family, archs, dtype, monkeypatch):
    cfgs = [RunConfig("mnist", family, a, seed=s, **REAL) for s in (3, 4) for a in archs]
    dataset = in_dtype(train.load_data(cfgs[0]), dtype)
    build = train.build_model
    monkeypatch.setattr(train, "build_model", lambda cfg, ds: build(cfg, ds).to(dtype))
    results = train.train_bundle(cfgs, dataset, "cpu")
    assert len(results) == len(cfgs) and all(r.status == "ok" for r in results)
    for cfg, result in zip(cfgs, results):
        assert_as_alone(result, cfg, dataset, dtype)
        assert result.n_params == sum(v.numel() for v in result.state_dict.values())
    key = next(iter(results[0].state_dict))
    assert not torch.equal(results[0].state_dict[key], results[len(archs)].state_dict[key])  # the seeds stayed apart
    times = [r.history.time_s.iloc[-1] for r in results[:len(archs)]]
    flops = [models.footprint(family, json.dumps(a, sort_keys=True), dataset.input_shape, 10).flops for a in archs]
    assert max(times) == times[flops.index(max(flops))]  # the wall time shared by FLOPs


@real_mnist
@pytest.mark.slow
@pytest.mark.parametrize("arch", [{"dim": 8, "depth": 1, "heads": 2}, {"dim": 16, "depth": 2, "heads": 4}])
def test_a_vit_bundle_stacks_one_architectures_seeds_as_if_each_ran_alone(arch):
    cfgs = [RunConfig("mnist", "vit", arch, seed=s, **REAL) for s in (0, 5)]
    dataset = train.load_data(cfgs[0])
    for cfg, result in zip(cfgs, train.train_bundle(cfgs, dataset, "cpu")):
        assert_as_alone(result, cfg, dataset)


def test_a_diverging_member_stops_alone_and_disturbs_no_other(tiny_root, monkeypatch):
    """The poisoned member is narrow, so it shares a padded bucket with the others and reads the padding's zero
    row: its NaN must still reach nobody."""
    archs = [[4, 3], [5, 2], [8, 6], [3]]
    cfgs = [RunConfig("mnist", "dnn", {"widths": w}, epochs=3, val_per_class=20, train_per_class=30) for w in archs]
    dataset = train.load_data(cfgs[0], root=tiny_root)
    build = train.build_model

    def poisoned(cfg, ds):  # [5, 2] starts from weights that overflow on the first step
        model = build(cfg, ds)
        if cfg.arch["widths"] == [5, 2]:
            torch.nn.init.constant_(model[3].weight, 1e38)
        return model
    monkeypatch.setattr(train, "build_model", poisoned)
    results = train.train_bundle(cfgs, dataset, "cpu")
    monkeypatch.setattr(train, "build_model", build)
    assert [r.status for r in results] == ["ok", "diverged", "ok", "ok"]
    assert len(results[1].history) < 4 and not math.isfinite(results[1].history.train_loss.iloc[-1])
    for cfg, result in zip(cfgs, results):
        if result.status == "ok":
            assert_as_alone(result, cfg, dataset)


def test_fused_programs_compute_each_members_logits_and_give_back_its_weights():
    torch.manual_seed(0)
    for family, archs, shape in (("dnn", [{"widths": w} for w in DNN_SHAPES], (1, 28, 28)),
                                 ("cnn", [{"channels": c} for c in (1, 4, 32, 1)], (3, 32, 32))):
        nets = [models.build(family, a, shape, 10) for a in archs]
        program = fused.fuse(nets, models.family(family).fused)
        x = torch.randn(17, *shape)
        logits = program(x)
        assert logits.shape == (17, len(nets), 10)
        for i, net in enumerate(nets):
            torch.testing.assert_close(logits[:, i], net(x), rtol=1e-5, atol=1e-5)
        for net, state in zip(nets, fused.split(program, program.state_dict())):
            assert list(state) == list(net.state_dict())
            assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
        assert models.n_params(program) >= sum(map(models.n_params, nets))  # padding at most adds


def test_dnn_padding_stays_exactly_zero_through_training(tiny_root):
    cfgs = [RunConfig("mnist", "dnn", {"widths": w}, epochs=1, val_per_class=20, train_per_class=30)
            for w in ([3, 5], [7, 5], [2], [9, 9, 4])]
    dataset = train.load_data(cfgs[0], root=tiny_root)
    program = fused.FusedMLP([train.build_model(c, dataset) for c in cfgs])
    stack = train.Stack([program], "cpu")
    opt = train.optimizer(cfgs[0], stack.params.values())
    stack.train_epoch(opt, train.cross_entropy, dataset.train, 16, [torch.Generator().manual_seed(0)])
    state = stack.state_dict(0)
    owned = {name: torch.zeros_like(t, dtype=torch.bool) for name, t in state.items()}
    for places in program.places:
        for name, index, _ in places.values():
            owned[name][index] = True
    padding = torch.cat([t[~owned[name]] for name, t in state.items()])
    assert len(padding) > 0 and torch.equal(padding, torch.zeros_like(padding))
    assert all(not torch.equal(state[n][owned[n]], program.state_dict()[n][owned[n]]) for n in state)  # it trained


def test_a_bundle_refuses_what_it_cannot_train_as_one(tiny_root):
    a = RunConfig("mnist", "dnn", {"widths": [8]}, seed=0, val_per_class=20, train_per_class=30)
    with pytest.raises(ConfigError, match="differ only in architecture and seed"):
        train.train_bundle([a, a.replace(lr=0.1)], device="cpu")
    with pytest.raises(ConfigError, match="differ only in architecture and seed"):
        train.train_bundle([a, RunConfig("mnist", "cnn", {"channels": 2}, val_per_class=20, train_per_class=30)])
    with pytest.raises(ConfigError, match="every one of its 2 architectures with every one of its 2 seeds"):
        train.train_bundle([a, a.replace(seed=1), a.replace(arch={"widths": [4]})], device="cpu")
    vit = RunConfig("mnist", "vit", {"dim": 8, "heads": 2}, val_per_class=20, train_per_class=30)
    with pytest.raises(ConfigError, match="'vit' has no fused form"):
        train.train_bundle([vit, vit.replace(arch={"dim": 16, "heads": 2})], device="cpu")


def test_bundles_group_what_can_train_together_and_respect_their_limits():
    quick = profiles.get("quick")
    configs = quick.configs("mnist")
    tasks = sweep.bundles(configs, "cpu")
    assert sorted(c.run_id for t in tasks for c in t) == sorted(c.run_id for c in configs)  # each run once
    for task in tasks:
        train.check_bundle(task)  # every task is a bundle train_bundle takes
        assert len({c.seed for c in task}) == 1 or len({train.arch_key(c) for c in task}) == 1
    dnn = [t for t in tasks if t[0].family == "dnn"]
    assert len(dnn) == quick.seeds and len(dnn[0]) > 50  # a CPU fuses a seed's DNNs, one seed per program
    assert {len(t) for t in tasks if t[0].family == "vit"} == {quick.seeds}  # a ViT's seeds stacked, unfused
    assert {len(t) for t in tasks if t[0].family == "cnn"} == {1}  # a CPU trains CNNs alone (Family.cpu_fuses)
    baseline = sweep.bundles(configs, "cpu", fuse=False)
    assert all(len({train.arch_key(c) for c in t}) == 1 for t in baseline)
    small = sweep.bundles(configs, "cpu", sweep.Limits(memory=2**20 * 16))
    assert all(sum(map(sweep.memory, t)) <= 2**20 * 16 or len(t) == 1 for t in small)
    said = []
    sweep.bundles(configs, "cpu", sweep.Limits(memory=2**20), warn=said.append)
    assert len(said) == 1 and "train alone" in said[0] and "MINARCH_BUNDLE_MEMORY" in said[0]
    short = sweep.bundles(configs, "cpu", sweep.Limits(seconds=1))
    assert len(short) > len(tasks)
    part = configs[:7] + configs[9:]  # an interrupted sweep: two seeds of one configuration stored
    assert sorted(c.run_id for t in sweep.bundles(part, "cpu") for c in t) == sorted(c.run_id for c in part)


@pytest.mark.parametrize("value", ["lots", "0", "-1", "nan", "1e9"])
def test_a_nonsense_bundle_memory_is_refused_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("MINARCH_BUNDLE_MEMORY", value)
    with pytest.raises(ConfigError, match="MINARCH_BUNDLE_MEMORY \\(--bundle-memory\\) must be a number of GiB"):
        sweep.bundles(profiles.get("smoke").configs("mnist"), "cpu")
    with pytest.raises(ConfigError, match="bundle memory must be a whole number of bytes"):
        sweep.Limits(memory=-5)
