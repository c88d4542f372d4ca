"""The compression frontier: variants sized by the real encoding, Pareto sets and recommendations with known answers."""
import copy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from minarch_core.analyses import encoding, frontier, grids, pruning, quantization, recovery
from minarch_core.analyses.common import run_columns
from minarch_core.engine import sweep, train
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError
from minarch_core.engine.store import Store

GRID = DEFAULT.frontier.only(sparsities=(0.0, 0.9), precisions=("float32", 4, 2))

T90_2 = 1.8856180831641267  # Student t, 2 degrees of freedom, one-sided 90 %


def test_every_variant_is_what_its_encoding_decodes_to(tiny_store, tiny_root):
    store, configs = tiny_store
    run = store.get(configs[1])
    table = frontier.variants(run, GRID, device="cpu", data_root=tiny_root).assign(**run_columns(run))
    assert len(table) == 6 and table.size_bytes.is_unique and table.test_acc.isna().all()  # the second stage's
    table = frontier.complete(table, store, table, device="cpu", data_root=tiny_root, progress=False)
    dataset = train.load_data(run.config, "cpu", tiny_root)
    for row in table.itertuples():
        pruned = pruning.make_permanent(pruning.prune_to(run.model(dataset), row.sparsity))
        precision = grids.precision_of(row.precision)
        packed = encoding.encode(pruned, precision, scheme=row.scheme, granularity=row.granularity)
        assert len(packed) == row.size_bytes  # the table's bytes are the encoding's
        decoded = encoding.decode(packed, run.model(dataset))
        expected = quantization.quantize_model(copy.deepcopy(pruned), precision, row.scheme, row.granularity)
        for a, b in zip(decoded.parameters(), expected.parameters()):
            assert torch.equal(a, b)  # the weights whose accuracy the table reports
        assert train.evaluate(decoded, dataset.test)[1] == pytest.approx(row.test_acc, abs=1e-6)  # rebuilt alike
        assert train.evaluate(decoded, dataset.val)[1] == pytest.approx(row.val_acc, abs=1e-6)
        assert (pruning.sparsity_of(decoded) >= row.sparsity - 1e-6)  # pruned weights stayed exactly zero
    pruned = table[table.sparsity == 0.9]
    assert (pruned.size_bytes.to_numpy() < table[table.sparsity == 0].size_bytes.to_numpy()).all()


def hand_table():
    """Four variants of known seeds: what the frontier and the recommendations must be is worked out by hand."""
    variants = {  # name: (bytes, validation accuracies of three seeds, test accuracies)
        "Y": (300, [0.99, 0.90, 0.99], [0.95, 0.95, 0.95]),  # mean 0.96 but spread: lower bound 0.9034
        "X": (500, [0.96, 0.97, 0.98], [0.97, 0.97, 0.97]),  # lower bound 0.97 - t * 0.01 / sqrt 3 = 0.95911
        "W": (1000, [0.95, 0.95, 0.95], [0.96, 0.96, 0.96]),  # beaten by X: smaller and better
        "Z": (2000, [0.99, 0.99, 0.99], [0.99, 0.99, 0.99]),
    }
    rows = []
    for name, (size, val, test) in variants.items():
        for seed, (v, t) in enumerate(zip(val, test)):
            rows.append(dict(dataset="mnist", config_id=name, method="post-training", sparsity=0.5, precision="4",
                             family="dnn", scheme="symmetric", granularity="channel",
                             model=f"DNN {name}", n_params=size, bits=4, achieved=0.5, size_bytes=size,
                             dense_bytes=4 * size, run_id=f"{name}{seed}", val_acc=v, test_acc=t))
    return pd.DataFrame(rows)


def test_variants_that_learned_nothing_are_no_point_of_the_frontier():
    table = hand_table()
    table.loc[table.config_id == "Y", "val_acc"] = 0.15  # below chance (10 %) + the fail margin (10 points)
    assert frontier.pareto(frontier.summarise(table)).config_id.tolist() == ["X", "Z"]


def test_lower_bounds_and_pareto_set_by_hand():
    summary = frontier.summarise(hand_table(), confidence=0.9).set_index("config_id")
    assert summary.loc["X", "val_low"] == pytest.approx(0.97 - T90_2 * 0.01 / np.sqrt(3))
    assert summary.loc["Y", "val_low"] == pytest.approx(0.96 - T90_2 * np.std([0.99, 0.9, 0.99], ddof=1) / np.sqrt(3))
    assert summary.loc["Z", "val_low"] == pytest.approx(0.99) and summary.loc["X", "ratio"] == 4
    assert frontier.pareto(summary.reset_index()).config_id.tolist() == ["Y", "X", "Z"]


@pytest.mark.parametrize("target, options, met, chosen", [
    (0.95, {}, True, "X"),  # Y is smaller and its mean passes, but not with 90 % confidence
    (0.90, {}, True, "Y"),
    (0.985, {}, True, "Z"),
    (0.995, {}, False, "Z"),  # nothing reaches it: the closest miss
    (0.95, {"max_bytes": 400}, False, "Y"),
    (0.95, {"confidence": 0.5}, True, "Y"),  # at 50 % the bound is the mean: 0.96
])
def test_recommendation_by_hand(target, options, met, chosen):
    answer = frontier.recommend(hand_table(), target, **options)
    assert answer.met is met and answer.row.config_id == chosen
    text = "\n".join(answer.lines("mnist"))
    assert ("the smallest variant whose own" in text) is met and "validation" in text and "minarch" in text


@pytest.mark.parametrize("kwargs, message", [
    ({"min_accuracy": 1.5}, "'min_accuracy' must be a number in 0..1"),
    ({"min_accuracy": 0.9, "confidence": 0.2}, "'confidence' must be a number in 0.5..0.999"),
    ({"min_accuracy": 0.9, "family": "vit"}, "family 'vit' has no stable model"),
    ({"min_accuracy": 0.9, "max_bytes": 10}, "no variant is as small as max_bytes=10"),
])
def test_bad_questions_get_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        frontier.recommend(hand_table(), **kwargs)


def test_a_variant_racing_stopped_is_neither_a_frontier_point_nor_an_answer():
    table = hand_table().assign(finished=True)
    table.loc[table.config_id == "Y", "finished"] = False  # as if a no-larger variant had been proven better
    assert frontier.pareto(frontier.summarise(table)).config_id.tolist() == ["X", "Z"]
    assert frontier.recommend(table, 0.90).row.config_id == "X"  # Y would be chosen had it finished


def test_owners_near_best_and_across_datasets():
    table = pd.concat([hand_table(), hand_table().assign(dataset="cifar10", run_id=lambda f: "c" + f.run_id)])
    owners = frontier.owners(table[table.dataset == "mnist"], configs=2)
    assert set(owners.config_id) == {"Y", "X"} and len(owners) == 6  # Y, X, Z own one point each: the first two
    front = frontier.pareto(frontier.summarise(table), by=("dataset",))
    near = frontier.near_best(front, within=0.025).set_index("dataset")
    assert near.loc["mnist", "config_id"] == "X" and near.loc["mnist", "best"] == pytest.approx(0.99)  # Y: 0.96 < 0.965
    assert frontier.near_best(front, within=0.0).config_id.tolist() == ["Z", "Z"]
    text = frontier.across(front, within=0.025)
    assert text.count("**500 B**") == 2 and "reach 97.0% against the best 99.0%" in text
    with pytest.raises(ConfigError, match="within must be a fraction"):
        frontier.near_best(front, within=2)


@pytest.mark.parametrize("float32, post, aware, verdict", [
    (np.nan, 0.5, 0.9, "no float32 reference"), (0.95, 0.93, 0.94, "post-training did not collapse"),
    (0.95, 0.60, 0.945, "holds"), (0.95, 0.60, 0.90, "recovery falls short")])
def test_the_recovery_verdict_follows_its_thresholds(float32, post, aware, verdict):
    assert recovery.verdict(float32, post, aware) == verdict


def test_an_empty_frontier_says_what_to_run():
    with pytest.raises(ConfigError, match="no configuration of the study learns the task"):
        frontier.recommend(hand_table().iloc[:0], 0.9)


def test_targets_ownership_and_answers_in_words():
    table = hand_table()
    summary = frontier.summarise(table)
    goals = frontier.targets(summary, "mnist")  # chance 10 %, best 99 %: whole percents between
    assert goals[0] == pytest.approx(0.54) and goals[-1] == pytest.approx(0.99) and goals == sorted(goals)
    answers = frontier.answers(table, [0.95, 0.995])
    assert answers.config_id.tolist() == ["X", "Z"] and answers.met.tolist() == ["yes", "no (closest)"]
    mixed = frontier.pareto(summary.assign(family=["dnn", "cnn", "cnn", "dnn"]), by=("dataset",))
    text = frontier.ownership(mixed)
    assert text.startswith("Across families the frontier has 3 points, smallest first: the **DNN** 2 points from "
                           "300 B to 2.0 kB (95.0% to 99.0%); and the **CNN** 1 point at 500 B (97.0%).")
    assert "Its most accurate variant is DNN Z" in text
    assert frontier.size_text(697) == "697 B" and frontier.size_text(1_234_567) == "1.2 MB"


def test_quantization_aware_finetuning_recovers_what_post_training_rounding_loses(tiny_root):
    # a 16-16 DNN on the synthetic task: rounded to 2 bits after training it drops far; two epochs of fine-tuning
    # with the 2-bit rounding in the loop (the straight-through estimator) win most of it back
    store = Store(tiny_root.parent / "qat-store")
    cfg = RunConfig("mnist", "dnn", {"widths": [16, 16]}, epochs=4, val_per_class=20, train_per_class=60)
    sweep.run([cfg], store, data_root=tiny_root, device="cpu", progress=False)
    run = store.get(cfg)
    ptq = frontier.variants(run, GRID.only(sparsities=(0.0,), precisions=(2,)), device="cpu", data_root=tiny_root)
    ptq = frontier.complete(ptq.assign(**run_columns(run)), store, ptq.assign(**run_columns(run)), device="cpu",
                            data_root=tiny_root, progress=False)
    qat, weights = recovery.variants(run, DEFAULT.recovery.only(sparsities=(0.0,), precisions=(2,)), device="cpu",
                                     data_root=tiny_root)
    assert list(weights) == [f"{run.run_id}/0/2"]  # the fine-tuned weights, kept for the store
    assert qat.test_acc.iloc[0] >= ptq.test_acc.iloc[0] + 0.2
    assert qat.size_bytes.iloc[0] == pytest.approx(ptq.size_bytes.iloc[0], rel=0.05)  # the same encoding
    tuned, = recovery.finetune(run, train.load_data(cfg, "cpu", tiny_root), [(0.9, 3)], epochs=1)
    assert pruning.sparsity_of(tuned) >= 0.9  # the masks held: pruned weights stayed zero through fine-tuning
    both = frontier.summarise(pd.concat([ptq, qat]).assign(dataset="mnist", config_id="c", family="dnn",
                                                           model="DNN 16-16", n_params=1))
    assert recovery.gain(both).recovered.iloc[0] == pytest.approx(qat.test_acc.iloc[0] - ptq.test_acc.iloc[0])


def hooked_finetune(run, dataset, sparsity, bits, epochs):
    """The reference for quantization-aware fine-tuning: one model under torch's pruning hook (the mask) and a
    forward pre-hook that rounds each weight layer's weight with torch's fake-quantization op, trained by the
    single-model loop."""
    cfg = run.config
    model = pruning.prune_to(run.model(dataset), sparsity)

    def hook(module, _):
        w = module.weight
        scale, zero, qmin, qmax = grids.grid(w.detach(), bits, "symmetric", "channel")
        module.weight = torch.fake_quantize_per_channel_affine(w, scale.flatten(), zero.flatten().to(torch.int32),
                                                               0, qmin, qmax)

    for module, _ in pruning.prunable(model):
        module.register_forward_pre_hook(hook)
    opt, order = train.optimizer(cfg, model.parameters()), torch.Generator().manual_seed(cfg.seed)
    for _ in range(epochs):
        train.train_epoch(model, opt, train.LOSSES[cfg.loss], dataset.train, cfg.batch_size, order)
    return pruning.make_permanent(model)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("family, arch, kw", [
    ("dnn", {"widths": [16, 8]}, {"optimizer": "adamw", "weight_decay": 0.01}),
    ("cnn", {"channels": 3}, {"optimizer": "adam"}),
    ("vit", {"dim": 8, "heads": 2, "depth": 1}, {"optimizer": "sgd", "lr": 0.05, "weight_decay": 0.01}),
])
@pytest.mark.parametrize("device", DEVICES)
def test_stacked_finetuning_gives_each_variant_the_weights_it_gets_alone(tiny_root, tmp_path, family, arch, kw,
                                                                         device, monkeypatch):
    # the variants of one model fine-tuned together (the CNN's two per stack) end where each ends fine-tuned alone
    # under torch's hooks, up to float rounding: three steps, each variant its own sparsity, bit width, mask and
    # optimiser state. (Adam's first steps move a weight whose gradient is rounding noise by a whole step,
    # whichever sign the noise has: the ViT, with many such, is checked under SGD.)
    if family == "cnn":
        monkeypatch.setattr(recovery, "per_stack", lambda run, dataset, n: 2)
    store = Store(tmp_path / "store")
    cfg = RunConfig("mnist", family, arch, epochs=1, batch_size=32, val_per_class=20, train_per_class=10, **kw)
    sweep.run([cfg], store, data_root=tiny_root, device="cpu", progress=False)
    run, dataset = store.get(cfg), train.load_data(cfg, device, tiny_root)
    grid = [(0.0, 4), (0.75, 2), (0.5, 3), (0.9, 2)]
    tuned = recovery.finetune(run, dataset, grid, epochs=1)
    assert [pruning.sparsity_of(t) for t in tuned] == pytest.approx([s for s, _ in grid], abs=0.01)
    for (sparsity, bits), stacked in zip(grid, tuned):
        alone = hooked_finetune(run, dataset, sparsity, bits, epochs=1).state_dict()
        assert list(stacked.state_dict()) == list(alone)
        for name, value in stacked.state_dict().items():
            torch.testing.assert_close(value, alone[name].cpu(), rtol=1e-4, atol=1e-5)
            assert torch.equal(value == 0, alone[name].cpu() == 0) or not name.endswith("weight")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_finetunes_as_the_eager_steps_do(tiny_root, tmp_path, monkeypatch):
    # enough full minibatches that the rounded step is captured as a graph and replayed
    store = Store(tmp_path / "store")
    cfg = RunConfig("mnist", "dnn", {"widths": [16]}, epochs=1, batch_size=16, val_per_class=20, train_per_class=30)
    sweep.run([cfg], store, data_root=tiny_root, device="cpu", progress=False)
    run, dataset = store.get(cfg), train.load_data(cfg, "cuda", tiny_root)
    grid = [(0.0, 4), (0.75, 2), (0.9, 3)]
    graphed = recovery.finetune(run, dataset, grid, epochs=1)
    monkeypatch.setattr(train, "CUDA_GRAPHS", False)
    eager = recovery.finetune(run, dataset, grid, epochs=1)
    for a, b in zip(graphed, eager):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(value, b.state_dict()[name], rtol=1e-4, atol=1e-5)


def test_a_cpu_stacks_as_many_variants_as_keep_a_step_cache_sized(tiny_root):
    # the seeds' rule: one step's widest stacked activation within sweep.CPU_STEP_BYTES (16 MiB); a DNN's and a
    # ViT's activations are small, a CNN's grow with its channels (16 x 26 x 26 values x 128 images x 4 bytes: 3)
    dataset = train.load_data(RunConfig("mnist", "dnn", {"widths": [8]}, val_per_class=20, train_per_class=10),
                              "cpu", tiny_root)
    stacked = {}
    for family, arch in (("dnn", {"widths": [500, 500]}), ("vit", {"dim": 32}), ("cnn", {"channels": 16}),
                         ("cnn", {"channels": 64})):
        cfg = RunConfig("mnist", family, arch, batch_size=128)
        run = SimpleNamespace(config=cfg, model=lambda ds, cfg=cfg: train.build_model(cfg, ds))
        stacked[f"{family} {arch}"] = recovery.per_stack(run, dataset, 9)
    assert list(stacked.values()) == [9, 9, 3, 1]


def test_one_seed_per_configuration_cannot_give_a_confidence():
    with pytest.raises(ConfigError, match="needs at least 2; build it from a study with --seeds 2"):
        frontier.recommend(hand_table().query("run_id.str.endswith('0')"), 0.9)


def test_readable_rows_name_the_precision_and_print_the_interval_in_one_token():
    rows = pd.DataFrame({"precision": ["float16", "3"], "test_low": [0.349, 0.9], "test_high": [0.365, 0.95]})
    out = frontier.readable(rows)
    assert out.precision.tolist() == ["float16", "3-bit"] and out.interval.tolist() == ["34.9%–36.5%", "90.0%–95.0%"]


def test_the_book_reports_test_accuracy_only_for_variants_chosen_on_validation():
    table = hand_table()
    table.loc[table.config_id == "W", "test_acc"] = np.nan  # W is beaten by X on validation: nobody reports it
    keys = frontier.reported(table)
    assert set(keys.config_id) == {"X", "Y", "Z"}  # the Pareto set and the targets' answers (X, Y and Z)
    assert frontier.settings_text(table).startswith("**Settings**: 12 trained models")  # a run per variant, seed
    assert "the whole test split measured for 3 of the 4 post-training variants" in frontier.settings_text(table)
    table.loc[:, "test_acc"] = np.nan  # what the book measures does not depend on test accuracy
    assert frontier.reported(table).equals(keys)


@pytest.fixture(scope="module")
def two_seeds(tiny_root, tmp_path_factory):
    """A store with two seeds of a small DNN, its study's frontier table stored as the chapter would have stored it
    but with no variant's test split measured yet: (where it is, that table)."""
    from minarch_core.analyses import tables
    from minarch_core.engine import profiles
    store = Store(tmp_path_factory.mktemp("ask-store"))
    study = profiles.get("smoke").replace(seeds=2, epochs=3, train_per_class=60, val_per_class=20,
                                          grids={"dnn": profiles.Grid("dnn", ((16,),))})
    sweep.run(study.configs("mnist"), store, data_root=tiny_root, device="cpu", progress=False)
    runs = [store.get(c) for c in study.configs("mnist")]
    table = pd.concat([frontier.variants(r, GRID, device="cpu", data_root=tiny_root).assign(**run_columns(r))
                       for r in runs], ignore_index=True)
    where = tables.Where(store, study, "mnist", "cpu", tiny_root)
    store.tables(study).save("mnist", "frontier", table, tables.fingerprint("frontier", where))
    return where, table


def test_recommend_measures_the_chosen_variants_test_split_on_demand_and_keeps_it(two_seeds):
    from minarch_core.analyses import tables
    where, before = two_seeds
    assert before.test_acc.isna().all()
    answer = tables.recommend(where, 0.2, confidence=0.5)
    assert answer.met and not np.isnan(answer.row.test_mean)
    after = tables.get("frontier", where)  # kept, and still taken as current
    chosen = (after[frontier.KEYS[1:]] == answer.row[frontier.KEYS[1:]]).all(axis=1)
    assert after[chosen].test_acc.notna().all() and len(after[chosen]) == 2  # both seeds, measured and kept
    assert after[~chosen].test_acc.isna().all()  # nothing else was measured
    assert after.drop(columns=["test_loss", "test_acc"]).equals(before.drop(columns=["test_loss", "test_acc"]))


def test_measuring_the_test_split_without_the_trained_runs_says_what_it_needs(two_seeds, tmp_path):
    _, table = two_seeds
    with pytest.raises(ConfigError, match="measured from their trained runs, and runs .* are not in the store"):
        frontier.complete(table, Store(tmp_path / "elsewhere"), table.iloc[:1])


def test_the_chapter_shows_recommends_answer_to_the_highest_target_met_else_the_last_missed():
    table = hand_table()
    answers = frontier.answers(table, [0.9, 0.95, 0.995])  # met, met, missed
    shown = frontier.transcript(table, answers, "mnist", "quick")
    assert shown.startswith("```text\n$ minarch recommend --dataset mnist --min-accuracy 0.95\n")
    assert "\n".join(frontier.recommend(table, 0.95).lines("mnist", "quick")) in shown
    missed = frontier.transcript(table, frontier.answers(table, [0.995, 0.999]), "mnist", "quick")
    assert "--min-accuracy 0.999" in missed and "no stored variant" in missed
