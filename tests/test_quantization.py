import pandas as pd
import pytest
import torch

from minarch_core.analyses import encoding, grids, quantization as q
from minarch_core.engine import models
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.errors import ConfigError

BITS = [2, 3, 4, 5, 6, 8, 10, 12, 16]


def weights(seed=0, shape=(16, 50)):
    torch.manual_seed(seed)
    return torch.randn(*shape) * 0.2 + 0.05


def levels(w, scale, zero, qmin, qmax):
    """The values the encoding decodes a tensor's integer codes to: the grid's arithmetic, element by element."""
    return (grids.codes(w, scale, zero, qmin, qmax) - zero) * scale


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("scheme", grids.SCHEMES)
@pytest.mark.parametrize("granularity, shape", [("tensor", (16, 50)), ("channel", (8, 3, 3, 3))])
def test_the_quantizer_gives_the_values_the_encoding_decodes_exactly(bits, scheme, granularity, shape):
    """torch's fake-quantize ops (what ``quantize`` calls) land on the levels of the codes the encoding stores."""
    w = weights(shape=shape)
    assert torch.equal(grids.quantize(w, bits, scheme, granularity), levels(w, *grids.grid(w, bits, scheme,
                                                                                            granularity)))


@pytest.mark.parametrize("granularity", grids.GRANULARITIES)
def test_the_quantizer_trains_through_the_straight_through_estimator(granularity):
    w = weights().requires_grad_()
    (grids.quantize(w, 3, "symmetric", granularity) * torch.arange(50.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(50.0).expand(16, 50))  # identity inside the grid's range
    assert torch.equal(grids.quantize(w, "float16"), w.detach().half().float())


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("scheme", grids.SCHEMES)
@pytest.mark.parametrize("granularity", grids.GRANULARITIES)
def test_error_is_at_most_half_a_step_and_quantizing_twice_changes_nothing(bits, scheme, granularity):
    w = weights(seed=bits)
    g = grids.grid(w, bits, scheme, granularity)
    once = grids.quantize(w, bits, scheme, granularity)
    float_slack = 4 * torch.finfo(torch.float32).eps * w.abs().max()
    assert ((w - once).abs() <= g[0] / 2 + float_slack).all()
    assert torch.equal(levels(once, *g), once)  # on its grid, a quantized tensor stays put
    if scheme == "symmetric":  # and the symmetric grid of a quantized tensor is the same grid
        assert torch.equal(grids.quantize(once, bits, scheme, granularity), once)
    groups = once if granularity == "channel" else [once]
    assert max(len(torch.unique(g_)) for g_ in groups) <= 2 ** bits  # levels per tensor / per channel


def test_small_integers_round_trip_exactly_at_16_bits():
    w = torch.randint(-32767, 32768, (1000,)).float()
    w[0] = 32767  # scale 1: every integer is a grid level
    assert torch.equal(grids.quantize(w, 16, "symmetric"), w)
    u = torch.randint(0, 65536, (1000,)).float()
    u[0], u[1] = 0, 65535
    assert torch.equal(grids.quantize(u, 16, "asymmetric"), u)


def test_degenerate_grids_give_numbers_not_nans():
    assert torch.equal(grids.quantize(torch.zeros(5, 5), 4), torch.zeros(5, 5))
    w = weights()
    assert torch.equal(grids.quantize(w, 1, "symmetric"), torch.zeros_like(w))  # the symmetric 1-bit grid is {0}
    assert len(torch.unique(grids.quantize(w, 1, "asymmetric"))) == 2


@pytest.mark.parametrize("args, message", [((0,), "bits must be an integer in 1..16"), ((17,), "1..16"),
                                           ((2.5,), "1..16"), ((8, "mirror"), "unknown quantization scheme"),
                                           ((8, "symmetric", "row"), "unknown granularity")])
def test_bad_quantization_requests(args, message):
    with pytest.raises(ConfigError, match=message):
        grids.quantize(weights(), *args)


def test_quantize_model_touches_weights_only_unless_asked():
    torch.manual_seed(0)
    model = models.build("dnn", {"widths": [10]}, (1, 28, 28), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q.quantize_model(model, 3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.endswith("bias"))
    assert all(len(torch.unique(after[k])) <= 7 for k in before if k.endswith("weight"))
    q.quantize_model(model, "float16", include_biases=True)
    assert torch.equal(model[1].bias, before["1.bias"].half().float())


def test_packed_size_in_bytes():
    """Values, scales and zero points as the paper-free formula counts them, plus each tensor's encoding header."""
    model = models.build("dnn", {"widths": [10]}, (1, 28, 28), 10)  # weights 7840 + 100, biases 10 + 10
    head, grid = encoding.HEADER.size, encoding.GRID.size
    assert encoding.size(model, "float32") == 4 * 7960 + 4 * head
    assert encoding.size(model, "bfloat16") == 2 * 7940 + 4 * 20 + 4 * head
    assert encoding.size(model, 8) == 7840 + 4 + 100 + 4 + 4 * 20 + 4 * head + 2 * grid
    assert encoding.size(model, 4, granularity="channel") == 3920 + 40 + 50 + 40 + 80 + 4 * head + 2 * grid
    assert encoding.size(model, 3, scheme="asymmetric") == 2940 + 8 + 38 + 8 + 80 + 4 * head + 2 * grid


def test_curve_and_the_int8_kernel_cross_check(tiny_store, tiny_data):
    store, configs = tiny_store
    run = store.get(configs[0])
    c = q.curve(run, precisions=("float32", "float16", 8, 4, 2))
    assert c.precision.tolist() == ["float32", "float16", "8", "4", "2"] and c.bits.tolist() == [32, 16, 8, 4, 2]
    assert c.test_acc.iloc[0] == run.summary["test_acc"] and c["drop"].iloc[0] == 0
    assert c.size_bytes.is_monotonic_decreasing
    check = q.int8_crosscheck(run)
    assert check["max_abs_logit_diff"] < 1e-3 and check["argmax_agreement"] == 1.0
    assert check["int8_test_acc"] == check["fake_test_acc"]
    cnn = q.curves([store.get(configs[2])], DEFAULT.quantization.only(precisions=("float32", 8),
                                                                     settings=(("symmetric", "channel"),)))
    assert cnn.family.unique().tolist() == ["cnn"] and abs(cnn["drop"].iloc[1]) < 0.05


def test_tolerance_finds_the_lowest_contiguous_precision():
    def frame(run_id, drops):
        rows = [("float32", 32, "float", 0.0)] + [(str(b), b, "int", d) for b, d in zip((16, 8, 6, 4, 2), drops)]
        return pd.DataFrame([{"run_id": run_id, "precision": p, "bits": b, "kind": k, "drop": d,
                              "test_acc": 0.9 - d} for p, b, k, d in rows])
    t = q.tolerance(pd.concat([frame("a", [0, 0, 0.005, 0.03, 0.5]), frame("b", [0, 0.02, 0, 0, 0.4])]))
    t = t.set_index("run_id")
    assert t.loc["a", "min_bits"] == 6 and t.loc["b", "min_bits"] == 16  # b fails at 8 bits: lower does not count
    assert t.loc["a", "drop_4bit"] == 0.03 and t.loc["a", "float32_acc"] == 0.9


def test_component_sensitivity_rounds_one_group_at_a_time(tiny_store, tiny_root):
    from minarch_core.analyses import components
    store, configs = tiny_store
    run = store.get(configs[1])  # DNN 32-32: three weight layers
    sens = components.sensitivity(run, bits=(8, 1), device="cpu", data_root=tiny_root)
    assert set(sens.component) == {"first layer", "middle layers", "last layer"}
    one = sens[sens.bits == 1]  # a symmetric 1-bit grid is {0}: that group's weights all become zero
    assert (one.test_acc <= 0.2).all() and (sens[sens.bits == 8]["drop"].abs() <= 0.02).all()
    assert (sens.n_values == [32 * 784] * 2 + [32 * 32] * 2 + [10 * 32] * 2).all()
    rank = components.ranking(sens.assign(family="dnn"), low=(1,))
    assert set(rank.component) == set(sens.component) and rank["rank"].min() == 1 and (rank.models == 1).all()


def test_component_drops_are_paired_on_the_test_sample(tiny_store, tiny_root, monkeypatch):
    """Each variant and the float model are measured on the same images, the test split's monitor subset."""
    from minarch_core.analyses import components
    from minarch_core.analyses.common import monitor_test
    from minarch_core.engine import train
    monkeypatch.setattr(train, "MONITOR_PER_CLASS", 5)  # the synthetic test split has 20 per class: a real subset
    store, configs = tiny_store
    run = store.get(configs[1])  # DNN 32-32: at 3 and 2 bits its accuracy on the subset and the whole split differ
    sens = components.sensitivity(run, bits=(3, 2), device="cpu", data_root=tiny_root)
    dataset = train.load_data(run.config, "cpu", tiny_root)
    model = run.model(dataset)
    _, states = components.variants(model, (3, 2))
    sample = monitor_test(dataset)
    assert len(sample) == 50 < len(dataset.test)
    float_acc = train.evaluate(model, sample)[1]
    net = run.model(dataset)  # loaded into a copy: the variants share the float model's tensors
    for row, state in zip(sens.itertuples(), states[1:]):
        net.load_state_dict(state)
        assert train.evaluate(net, sample)[1] == pytest.approx(row.test_acc)
        assert row.drop == pytest.approx(float_acc - row.test_acc)


def test_the_tolerance_sentence_reads_symmetric_per_tensor_rounding_only():
    tolerance = pd.DataFrame({"config_id": ["a", "a", "b", "b"], "scheme": ["symmetric", "asymmetric"] * 2,
                              "granularity": ["tensor"] * 4, "min_bits": [4, 16, 6, 16],
                              "drop_2bit": [0.30, 0.01, 0.50, 0.01]})
    text = q.tolerance_in_words(tolerance)
    assert "**5 bits** (median over 2 models" in text and "at least 30 points" in text
    assert q.tolerance_in_words(tolerance.iloc[:0]) == "No representative model was rounded."
