import copy
import math
import sys

import pytest
import torch
from conftest import real_mnist

from minarch_core.engine import profiles, settings, train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError

TINY = dict(val_per_class=20, train_per_class=30)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # CUDA's own checks where a GPU is present


def run(tiny_root, family="dnn", arch=None, **kw):
    cfg = RunConfig("mnist", family, arch if arch is not None else {"widths": [32]}, **{"epochs": 2, **TINY, **kw})
    return train.train(cfg, train.load_data(cfg, root=tiny_root), "cpu")


def test_history_has_one_row_per_epoch_from_the_untrained_model(tiny_root):
    r = run(tiny_root, epochs=3)
    assert r.status == "ok"
    assert r.history.epoch.tolist() == [0, 1, 2, 3]
    assert list(r.history.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                                       "test_acc", "time_s"]
    assert r.history[[c for c in r.history if c.endswith("_acc")]].stack().between(0, 1).all()
    assert r.history.time_s.is_monotonic_increasing
    assert r.n_params == sum(v.numel() for v in r.state_dict.values())


def test_same_config_and_seed_give_the_same_history_and_weights(tiny_root):
    a, b = run(tiny_root, seed=3), run(tiny_root, seed=3)
    cols = [c for c in a.history if c != "time_s"]
    assert a.history[cols].equals(b.history[cols])
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    c = run(tiny_root, seed=4)
    assert not torch.equal(a.state_dict["1.weight"], c.state_dict["1.weight"])


def test_training_leaves_the_global_rng_alone(tiny_root):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(tiny_root, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_a_learnable_task_is_learned(tiny_root):
    r = run(tiny_root, epochs=8, train_per_class=100)
    assert r.history.test_acc.iloc[-1] > 0.9 > 0.3 > r.history.test_acc.iloc[0]


def test_divergence_is_a_result_not_a_crash(tiny_root):
    r = run(tiny_root, epochs=5, optimizer="sgd", lr=1e30)
    assert r.status == "diverged"
    assert not math.isfinite(r.history.train_loss.iloc[-1])
    assert len(r.history) < 6  # stopped at the epoch that diverged


@pytest.mark.parametrize("family, arch", [("cnn", {"channels": 2}), ("vit", {"dim": 8, "heads": 2, "depth": 1})])
def test_other_families_train(tiny_root, family, arch):
    r = run(tiny_root, family, arch, epochs=1)
    assert r.status == "ok" and r.history.train_loss.iloc[1] < r.history.train_loss.iloc[0]


def test_device_setting_is_validated(monkeypatch):
    assert settings.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        settings.device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            settings.device("cuda")
        monkeypatch.setenv("MINARCH_DEVICE", "auto")
        assert settings.device() == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_starts_from_the_cpu_weights_and_learns(tiny_root):
    cfg = RunConfig("mnist", "dnn", {"widths": [32]}, epochs=0, **TINY)
    cpu = train.train(cfg, train.load_data(cfg, root=tiny_root), "cpu")
    gpu = train.train(cfg, train.load_data(cfg, root=tiny_root), "cuda")
    assert all(torch.equal(cpu.state_dict[k], gpu.state_dict[k]) for k in cpu.state_dict)
    cfg = cfg.replace(epochs=4, train_per_class=100)
    assert train.train(cfg, train.load_data(cfg, root=tiny_root), "cuda").final["test_acc"] > 0.9


@real_mnist
@pytest.mark.parametrize("width, low, high", [(100, 0.85, 1.0), (1, 0.0, 0.45)])
def test_real_mnist_width_100_learns_and_width_1_does_not(width, low, high):
    cfg = RunConfig("mnist", "dnn", {"widths": [width]}, epochs=3, train_per_class=200)
    acc = train.train(cfg, device="cpu").history.test_acc.iloc[-1]
    assert low < acc < high


def plain_loop(cfg, dataset):
    """The textbook single-model loop, built from the reference pieces: the oracle for seed batching. It returns
    the history measured on the monitor subsets, the final metrics on the whole splits, and the weights."""
    model = train.build_model(cfg, dataset).to(dataset.train.x.device)
    opt, loss_fn = train.optimizer(cfg, model.parameters()), train.LOSSES[cfg.loss]
    order = torch.Generator().manual_seed(cfg.seed)
    monitor = dataset.monitor(train.MONITOR_PER_CLASS)
    measure = lambda ds: [v for s in ("train", "val", "test") for v in train.evaluate(model, getattr(ds, s), loss_fn)]  # noqa: E731
    rows = []
    for epoch in range(cfg.epochs + 1):
        if epoch:
            train.train_epoch(model, opt, loss_fn, dataset.train, cfg.batch_size, order)
        rows.append(measure(monitor))
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(measure(dataset), dtype=torch.float64), \
        model.state_dict()


@pytest.mark.parametrize("family, archs, kw", [
    ("dnn", [{"widths": [16, 8]}, {"widths": [4]}], {}),
    ("dnn", [{"widths": [8]}, {"widths": [8, 3]}], {"optimizer": "sgd", "lr": 0.05, "loss": "mse"}),
    ("cnn", [{"channels": 3}, {"channels": 1}], {"optimizer": "adamw", "weight_decay": 0.01}),
    ("vit", [{"dim": 8, "heads": 2, "depth": 1}], {}),
])
@pytest.mark.parametrize("device", DEVICES)
def test_a_bundle_gives_the_histories_and_weights_of_separate_runs(tiny_root, family, archs, kw, device,
                                                                   monkeypatch):
    """Several seeds of fused programs stacked through vmap (the CUDA path), with each optimiser and loss; the
    real-data and float64 checks of fusion are in test_fused."""
    monkeypatch.setattr(train, "MONITOR_PER_CLASS", 12)  # history rows on a monitor subset smaller than the splits
    cfgs = [RunConfig("mnist", family, a, seed=s, epochs=2, batch_size=32, **TINY, **kw) for s in (0, 5, 2)
            for a in archs]
    dataset = train.load_data(cfgs[0], root=tiny_root, device=device)
    assert len(dataset.monitor(12).train) == 120 < len(dataset.train)
    batched = train.train_bundle(cfgs, dataset, device)
    cols = [c for c in batched[0].history if c not in ("epoch", "time_s")]
    for cfg, result in zip(cfgs, batched):
        history, final, state = plain_loop(cfg, dataset)
        torch.testing.assert_close(torch.tensor(result.history[cols].to_numpy()), history, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor([result.final[c] for c in train.METRICS], dtype=torch.float64),
                                   final, rtol=1e-4, atol=1e-5)
        for k, v in state.items():
            # ViT's key bias has a zero gradient in exact arithmetic (softmax ignores a shift), so Adam turns
            # float-rounding noise into lr-sized steps there; elsewhere the weights agree to rounding
            atol = 2 * cfg.lr * cfg.epochs * len(dataset.train) / cfg.batch_size if k.endswith("qkv.bias") else 1e-5
            torch.testing.assert_close(result.state_dict[k], v.cpu(), rtol=1e-3, atol=atol)
    last = list(batched[0].state_dict)[-1]
    assert not torch.equal(batched[0].state_dict[last], batched[len(archs)].state_dict[last])  # seeds stayed apart


def test_a_diverging_seed_stops_alone_and_leaves_the_others_untouched(tiny_root, monkeypatch):
    cfgs = [RunConfig("mnist", "dnn", {"widths": [8]}, seed=s, epochs=3, **TINY) for s in range(3)]
    dataset = train.load_data(cfgs[0], root=tiny_root)
    build = train.build_model

    def poisoned(cfg, ds):  # seed 1 starts from weights that overflow on the first step
        model = build(cfg, ds)
        if cfg.seed == 1:
            torch.nn.init.constant_(model[1].weight, 1e38)
        return model
    monkeypatch.setattr(train, "build_model", poisoned)
    results = train.train_bundle(cfgs, dataset, "cpu")
    assert [r.status for r in results] == ["ok", "diverged", "ok"]
    assert len(results[1].history) < 4 and len(results[0].history) == 4
    monkeypatch.setattr(train, "build_model", build)
    alone = train.train(cfgs[2], dataset, "cpu")
    cols = [c for c in alone.history if c != "time_s"]
    torch.testing.assert_close(torch.tensor(results[2].history[cols].to_numpy()),
                               torch.tensor(alone.history[cols].to_numpy()), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family, arch", [("dnn", {"widths": [16, 8]}), ("cnn", {"channels": 3}),
                                          ("vit", {"dim": 8, "heads": 2, "depth": 1})])
def test_variants_evaluated_together_score_as_they_do_one_by_one(tiny_root, family, arch):
    cfg = RunConfig("mnist", family, arch, epochs=1, **TINY)
    dataset = train.load_data(cfg, root=tiny_root)
    model = train.train(cfg, dataset, "cpu")
    base = train.build_model(cfg, dataset)
    states = []
    for scale in (1.0, 0.5, 0.0, -2.0):  # any weight sets of the architecture, e.g. its compressed variants
        states.append({k: v * scale for k, v in model.state_dict.items()})
    together = train.evaluate_states(base, states, dataset.test, group=3)  # CUDA: two stacks, 3 + 1
    nets = [copy.deepcopy(base) for _ in states]
    for net, state in zip(nets, states):
        net.load_state_dict(state)
    losses, accuracies = train.Stack(nets, "cpu").measure(dataset.test, train.cross_entropy)  # stacked, here too
    halved = train.Stack(nets[:1], "cpu", weights=lambda p: {k: v * 0.5 for k, v in p.items()})  # as recovery rounds
    (half_loss,), (half_acc,) = (m[0] for m in halved.measure(dataset.test, train.cross_entropy))
    for i, state in enumerate(states):
        base.load_state_dict(state)
        alone = train.evaluate(base, dataset.test)
        for loss, acc in (together[i], (losses[i][0], accuracies[i][0])):
            assert acc == pytest.approx(alone[1], abs=1e-6) and loss == pytest.approx(alone[0], rel=1e-4, abs=1e-6)
    base.load_state_dict(states[1])  # the weights function's halving is what is measured, not the stored weights
    assert (half_loss, half_acc) == pytest.approx(train.evaluate(base, dataset.test), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("family, arch", [("dnn", {"widths": [16, 8]}), ("cnn", {"channels": 3}),
                                          ("vit", {"dim": 8, "heads": 2, "depth": 1})])
def test_weight_sets_that_share_leading_layers_score_bit_for_bit_as_alone(tiny_root, family, arch):
    # on a CPU the layers a set shares with the first set run once per chunk (a DNN's or CNN's components): the
    # numbers must be evaluate's exactly, whichever layer a set changes, and for a set equal to the first
    cfg = RunConfig("mnist", family, arch, epochs=1, **TINY)
    dataset = train.load_data(cfg, root=tiny_root, device="cpu")
    trained = train.train(cfg, dataset, "cpu").state_dict
    states = [trained, dict(trained)]
    for name in trained:  # each tensor changed alone: the first layer, the middle ones, the last
        states.append({**trained, name: trained[name] * 0.5})
    model = train.build_model(cfg, dataset)
    measured = train.evaluate_states(model, states, dataset.test)
    assert len({loss for loss, _ in measured}) > 1  # the changes matter
    for state, result in zip(states, measured):
        model.load_state_dict(state)
        assert result == train.evaluate(model, dataset.test)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_trains_as_the_eager_steps_do(tiny_root, monkeypatch):
    cfgs = [RunConfig("mnist", "dnn", {"widths": [16]}, seed=s, epochs=2, batch_size=16, **TINY) for s in range(3)]
    dataset = train.load_data(cfgs[0], root=tiny_root, device="cuda")
    graphed = train.train_bundle(cfgs, dataset, "cuda")
    monkeypatch.setattr(train, "CUDA_GRAPHS", False)
    eager = train.train_bundle(cfgs, dataset, "cuda")
    cols = [c for c in eager[0].history if c != "time_s"]
    for a, b in zip(graphed, eager):
        torch.testing.assert_close(torch.tensor(a.history[cols].to_numpy()), torch.tensor(b.history[cols].to_numpy()),
                                   rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(train, "CUDA_GRAPHS", True)
    stack = train.Stack([train.build_model(c, dataset) for c in cfgs], "cuda")
    opt = train.optimizer(cfgs[0], stack.params.values())
    stack.train_epoch(opt, train.cross_entropy, dataset.train, 16, [torch.Generator() for _ in cfgs])
    assert len(stack._graphs) == 1  # 300 images in minibatches of 16: warm-up, capture, replays, a partial last


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_allocator_keeps_freed_activations_for_reuse():
    assert settings.keep_freed_memory()  # glibc accepted both settings


@pytest.mark.parametrize("family, archs", [("dnn", [{"widths": [16, 8]}, {"widths": [4]}]),
                                           ("cnn", [{"channels": 3}, {"channels": 1}]),
                                           ("vit", [{"dim": 8, "heads": 2, "depth": 1}])])
def test_bf16_training_is_a_run_of_its_own_and_a_bf16_bundle_trains_each_run_as_alone(tiny_root, family, archs):
    """bf16 autocast: its own run id (an fp32 run keeps the id it had before the field existed), the training
    arithmetic changed but the weights, optimiser and final accuracies float32, and a bundle of bf16 runs gives
    each what training it alone under bf16 gives (to the fused tests' float32 tolerance: weights within 1e-2 in
    relative norm, histories within two images)."""
    cfgs = [RunConfig("mnist", family, a, seed=s, epochs=2, batch_size=32, train_precision="bf16", **TINY)
            for s in (0, 3) for a in archs]
    fp32 = cfgs[0].replace(train_precision="fp32")
    assert fp32.run_id != cfgs[0].run_id
    assert fp32.run_id == RunConfig.from_dict({k: v for k, v in fp32.to_dict().items()
                                               if k != "train_precision"}).run_id
    dataset = train.load_data(cfgs[0], root=tiny_root)
    bundle = train.train_bundle(cfgs, dataset, "cpu")
    for cfg, result in zip(cfgs, bundle):
        alone = train.train(cfg, dataset, "cpu")
        assert all(v.dtype == torch.float32 for v in result.state_dict.values())
        for k, v in alone.state_dict.items():
            assert ((result.state_dict[k] - v).norm() / v.norm()).item() <= 1e-2, k
        accs = [c for c in result.history if c.endswith("_acc")]
        split = len(dataset.monitor(train.MONITOR_PER_CLASS).val)
        assert (result.history[accs] - alone.history[accs]).abs().max().max() <= 2 / split + 1e-6
    reference = train.train(fp32, dataset, "cpu")
    assert any(not torch.equal(v, reference.state_dict[k]) for k, v in bundle[0].state_dict.items())  # bf16
    model = train.build_model(cfgs[0], dataset)
    model.load_state_dict(bundle[0].state_dict)
    loss, acc = train.evaluate(model, dataset.test)  # the final accuracies: float32 arithmetic
    assert bundle[0].final["test_acc"] == pytest.approx(acc, abs=1e-6)  # float32 arithmetic, to its rounding
    assert bundle[0].final["test_loss"] == pytest.approx(loss, rel=1e-5)


def test_an_unknown_training_precision_is_refused_naming_the_field_and_its_choices():
    with pytest.raises(ConfigError, match=r"unknown train_precision 'fp16': choose one of \['fp32', 'bf16'\]"):
        RunConfig("mnist", "dnn", {"widths": [4]}, train_precision="fp16")
    with pytest.raises(ConfigError, match=r"profile 'quick': unknown train_precision 'half'"):
        profiles.get("quick").replace(train_precision="half")


def test_bf16_on_a_cpu_without_bf16_instructions_warns_once_naming_the_switch(monkeypatch, capsys):
    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(settings, "_WARNED_BF16", [])
    for _ in range(2):
        with settings.autocast("bf16", torch.device("cpu")):
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    err = capsys.readouterr().err
    assert err.count("no bfloat16 instructions") == 1 and "train_precision='fp32'" in err
    assert "--train-precision fp32" in err
