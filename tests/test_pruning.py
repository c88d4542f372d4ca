import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from minarch_core.analyses import pruning
from minarch_core.engine import models, train
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.errors import ConfigError


def random_model(seed=0):
    torch.manual_seed(seed)
    return models.build("dnn", {"widths": [40, 30]}, (1, 28, 28), 10)


def weights(model):
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("s", [0.0, 0.1, 0.37, 0.5, 0.9, 0.99, 1.0])
def test_global_pruning_matches_a_hand_computed_threshold_exactly(s):
    model = random_model()
    dense = [w.detach().clone() for w in weights(model)]
    pruning.prune_to(model, s, "global")
    flat = torch.cat([w.abs().flatten() for w in dense])
    k = round(s * flat.numel())
    expected = torch.ones_like(flat, dtype=torch.bool)
    expected[torch.argsort(flat)[:k]] = False  # by hand: the k smallest magnitudes over all layers go
    kept = torch.cat([(w != 0).flatten() for w in weights(model)])
    assert torch.equal(kept, expected)
    assert pruning.sparsity_of(model) == k / flat.numel()


@pytest.mark.parametrize("family, arch", [("dnn", {"widths": [40, 30]}), ("cnn", {"channels": 4}),
                                          ("vit", {"dim": 8, "depth": 1, "heads": 2})])
@pytest.mark.parametrize("scope", pruning.SCOPES)
def test_the_kthvalue_selection_prunes_the_weights_torchs_topk_pruning_does(family, arch, scope):
    """The same weights, except which of several weights tied at the threshold's magnitude go (the default init
    has such ties)."""
    torch.manual_seed(1)
    model = models.build(family, arch, (1, 28, 28), 10)
    dense = model.state_dict()
    for s in (0.1, 0.5, 0.9, 0.99):
        ours = pruning.make_permanent(pruning.prune_to(copy.deepcopy(model), s, scope)).state_dict()
        theirs = copy.deepcopy(model)
        params = pruning.prunable(theirs)
        if scope == "global":
            prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=s)
        else:
            for module, name in params:
                prune.l1_unstructured(module, name, amount=s)
        for module, name in params:
            prune.remove(module, name)
        theirs = theirs.state_dict()
        assert sum(int((v == 0).sum()) for v in ours.values()) == sum(int((v == 0).sum()) for v in theirs.values())
        for k, v in theirs.items():
            differ = ours[k] != v
            if differ.any():  # a tie: every weight pruned by one and kept by the other has the same magnitude
                assert dense[k][differ].abs().unique().numel() == 1, (k, s)


def test_magnitudes_tied_at_the_threshold_go_first_in_memory_order():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.2, 0.2, 0.9], [0.2, 0.1, -0.2, 0.7]]))
    pruning.L1Magnitude.apply(layer, "weight", amount=4)  # 0.1, then three of the four 0.2s
    assert torch.equal(layer.weight != 0, torch.tensor([[True, False, False, True], [False, False, True, True]]))


def test_layer_pruning_prunes_the_same_fraction_of_every_tensor_and_keeps_biases():
    model = random_model()
    biases = [m.bias.detach().clone() for m in model.modules() if isinstance(m, nn.Linear)]
    pruning.prune_to(model, 0.3, "layer")
    for w in weights(model):
        assert int((w == 0).sum()) == round(0.3 * w.numel())
    assert all(torch.equal(b, m.bias) for b, m in zip(biases, [m for m in model.modules() if isinstance(m, nn.Linear)]))


def test_classifier_can_stay_dense():
    model = random_model()
    pruning.prune_to(model, 0.8, keep_classifier_dense=True)
    assert int((weights(model)[-1] == 0).sum()) == 0
    assert pruning.sparsity_of(model, keep_classifier_dense=True) == pytest.approx(0.8, abs=1e-4)


def test_make_permanent_leaves_plain_zeroed_weights():
    model = pruning.make_permanent(pruning.prune_to(random_model(), 0.5))
    keys = set(model.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in keys)
    fresh = random_model(seed=1)
    fresh.load_state_dict(model.state_dict())
    assert pruning.sparsity_of(fresh) == pytest.approx(0.5, abs=1e-4)


def test_repruning_grows_sparsity_to_the_new_target():
    model = pruning.prune_to(random_model(), 0.5)
    first_zeros = torch.cat([(w == 0).flatten() for w in weights(model)])
    pruning.prune_to(model, 0.8)
    zeros = torch.cat([(w == 0).flatten() for w in weights(model)])
    assert pruning.sparsity_of(model) == pytest.approx(0.8, abs=1e-4)
    assert zeros[first_zeros].all()  # what was pruned stays pruned


@pytest.mark.parametrize("kwargs, message", [({"sparsity": 1.5}, "sparsity must be a fraction"),
                                             ({"sparsity": 0.5, "scope": "random"}, "unknown pruning scope")])
def test_bad_pruning_requests(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        pruning.prune_to(random_model(), **kwargs)


def test_curve_on_a_stored_run_leaves_the_dense_run_alone(tiny_store, tiny_data):
    store, configs = tiny_store
    run = store.get(configs[0])
    before = {k: v.clone() for k, v in run.state_dict().items()}
    c = pruning.curve(run, sparsities=(0, 0.5, 0.9, 1.0))
    assert c.sparsity.tolist() == [0, 0.5, 0.9, 1.0] and c.achieved.tolist() == pytest.approx([0, 0.5, 0.9, 1.0], abs=1e-3)
    assert c.test_acc.iloc[0] == run.summary["test_acc"]  # sparsity 0 is the stored model itself
    assert c.test_acc.iloc[-1] <= 0.2  # everything pruned: chance, recorded rather than an error
    assert all(torch.equal(before[k], v) for k, v in run.state_dict().items())


def test_finetuning_keeps_the_masks_and_iterative_pruning_reaches_each_target(tiny_store, tiny_data):
    store, configs = tiny_store
    run = store.get(configs[1])
    one_shot = pruning.curve(run, sparsities=(0, 0.6, 0.9))
    for iterative in (False, True):
        c = pruning.curve(run, sparsities=(0, 0.6, 0.9), finetune_epochs=2, iterative=iterative)
        assert c.achieved.tolist() == pytest.approx([0, 0.6, 0.9], abs=1e-3)
        assert c.method.iloc[0] == ("iterative" if iterative else "one-shot")
        assert c.test_loss.iloc[0] == one_shot.test_loss.iloc[0]  # the dense model is never fine-tuned
        assert (c.test_loss.iloc[1:] != one_shot.test_loss.iloc[1:]).all()  # the pruned ones were
        assert c.test_acc.iloc[2] >= one_shot.test_acc.iloc[2]  # and fine-tuning recovers what 90 % pruning lost
    grid = DEFAULT.pruning.only(sparsities=(0.0, 0.9), scopes=("global",), epochs=2)  # the grid's fine-tuning
    assert pruning.curves([run], grid).test_loss.tolist() == pytest.approx(
        pruning.curve(run, sparsities=(0, 0.9), finetune_epochs=2).test_loss.tolist())


def test_fine_tuning_by_hand_keeps_pruned_weights_zero(tiny_store, tiny_data):
    store, configs = tiny_store
    run = store.get(configs[0])
    dataset = train.load_data(run.config)
    model = pruning.prune_to(run.model(dataset), 0.7)
    opt = train.optimizer(run.config, model.parameters())
    train.train_epoch(model, opt, train.LOSSES["cross_entropy"], dataset.train, 32, torch.Generator().manual_seed(0))
    assert pruning.sparsity_of(model) == pytest.approx(0.7, abs=1e-4)


def test_cnn_kernels_are_pruned_too(tiny_store, tiny_data):
    store, configs = tiny_store
    c = pruning.curves([store.get(configs[2])], DEFAULT.pruning.only(sparsities=(0, 0.5), scopes=("global",)))
    assert c.family.unique().tolist() == ["cnn"] and c.achieved.iloc[1] == pytest.approx(0.5, abs=1e-3)


def synthetic_curve(run_id, accs, sparsities=(0, 0.2, 0.4, 0.6, 0.8, 0.99)):
    return pd.DataFrame({"run_id": run_id, "dataset": "mnist", "scope": "global", "method": "one-shot", "finetune_epochs": 0,
                         "sparsity": sparsities, "test_acc": accs})


def test_redundancy_and_phases_on_known_curves():
    c = pd.concat([synthetic_curve("a", [0.98, 0.98, 0.975, 0.965, 0.6, 0.1]),
                   synthetic_curve("b", [0.90, 0.85, 0.895, 0.89, 0.88, 0.87])])  # dips then recovers: not kept
    r = pruning.redundancy(c).set_index("run_id")
    assert r.loc["a", "redundancy"] == 0.4 and r.loc["a", "collapse_at"] == 0.99
    assert r.loc["b", "redundancy"] == 0 and np.isnan(r.loc["b", "collapse_at"])
    assert pruning.phases(c).tolist()[:6] == ["plateau", "plateau", "plateau", "decline", "decline", "collapse"]


def test_a_permanently_pruned_model_keeps_its_parameter_order():
    model = models.build("dnn", {"widths": [8]}, (1, 28, 28), 10)
    before = [name for name, _ in model.named_parameters()]
    pruning.make_permanent(pruning.prune_to(model, 0.5))
    assert [name for name, _ in model.named_parameters()] == before


@pytest.mark.parametrize("deep, words", [(0.30, "1.0 points less sparsity** per extra hidden layer"),
                                         (0.36, "1.0 points more sparsity"), (0.33, "as much sparsity")])
def test_the_depth_sentence_follows_the_sign_of_its_numbers(deep, words):
    matched = pd.DataFrame({"band": [0, 0, 1, 1, 2], "depth": [1, 4, 1, 4, 1],  # band 2 has one depth: not counted
                            "redundancy": [0.33, deep, 0.33, deep, 0.9], "n_params": [1000, 1100, 5000, 5200, 9000]})
    text = pruning.depth_in_words(matched)
    assert words in text and "the 2 size bands" in text


def test_matched_bands_pair_every_size_where_two_depths_meet_each_network_once():
    configs = pd.DataFrame([{"dataset": "mnist", "family": "dnn", "config_id": f"d{d}p{p}", "depth": d, "n_params": p,
                             "shape": "equal", "regime": "learning"}
                            for d, p in [(1, 1000), (2, 1100), (4, 1250), (1, 8000), (2, 9000), (2, 30000),
                                         (4, 31000), (1, 100000)]])
    bands = pruning.matched_bands(configs)
    members = bands.groupby("band").config_id.apply(sorted).to_dict()
    assert members == {"1,000": ["d1p1000", "d2p1100", "d4p1250"], "8,000": ["d1p8000", "d2p9000"],
                       "30,000": ["d2p30000", "d4p31000"]}  # 100,000 has no partner within 1.3x: no band
    slopes = pruning.depth_slopes(bands.assign(redundancy=bands.depth * 0.05))
    assert slopes.slope.tolist() == pytest.approx([0.05] * 3)
