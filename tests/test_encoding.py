"""The encoding behind every byte count: pruned and quantized models round-trip exactly, and the sizes are what the
bytes say."""
import numpy as np
import pytest
import torch

from minarch_core import packed as packed_
from minarch_core.analyses import encoding, pruning, quantization
from minarch_core.engine import models


def model(seed=0, family="dnn", arch=None):
    torch.manual_seed(seed)
    return models.build(family, arch or {"widths": [20, 10]}, (1, 28, 28), 10)


def weights(m):
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize("bits", [8, 6, 4, 3, 2])
def test_bits_pack_and_unpack(bits):
    values = np.random.default_rng(bits).integers(0, 2 ** bits, 1001)
    packed = encoding.pack_bits(values, bits)
    assert len(packed) == (1001 * bits + 7) // 8 and (packed_.unpack_bits(packed, bits, 1001) == values).all()


@pytest.mark.parametrize("family, arch", [("dnn", {"widths": [20, 10]}), ("cnn", {"channels": 4}),
                                          ("vit", {"dim": 8, "depth": 1, "heads": 2})])
@pytest.mark.parametrize("precision, scheme, granularity", [
    ("float32", "symmetric", "tensor"), ("float16", "symmetric", "tensor"), ("bfloat16", "symmetric", "tensor"),
    (8, "symmetric", "tensor"), (4, "symmetric", "channel"), (3, "asymmetric", "channel"), (2, "asymmetric", "tensor")])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.95])
def test_a_pruned_quantized_model_round_trips_to_the_weights_the_book_measures(family, arch, precision, scheme,
                                                                               granularity, sparsity):
    dense = model(1, family, arch)
    pruning.make_permanent(pruning.prune_to(dense, sparsity))
    expected = weights(quantization.quantize_model(pruning.make_permanent(pruning.prune_to(
        model(1, family, arch), sparsity)), precision, scheme, granularity))
    data = encoding.encode(dense, precision, scheme, granularity)
    back = weights(encoding.decode(data, dense))
    for a, b in zip(back, expected):
        assert torch.equal(a, b)  # bit for bit, zeros included
    assert encoding.size(dense, precision, scheme=scheme, granularity=granularity) == len(data)


def test_byte_counts_by_hand():
    m = models.build("dnn", {"widths": [10]}, (1, 28, 28), 10)  # 784x10 + 10, 10x10 + 10: 7,960 parameters
    header = encoding.HEADER.size
    assert encoding.size(m) == 4 * 7960 + 4 * header  # float32, dense: every tensor its header and values
    grid = encoding.GRID.size + 4  # one float32 scale
    expected = header + grid + 7840 // 2 + header + 40 + header + grid + 100 // 2 + header + 40  # 4-bit weights
    assert encoding.size(m, 4) == expected


def test_sparse_tensors_choose_the_cheaper_layout():
    def layout_of(m, shape, precision="float32"):
        data = encoding.encode(m, precision)
        return dict(zip((tuple(p.shape) for p in m.parameters()), encoding.layouts(data, m)))[shape]

    def pruned(sparsity):
        m = model(2)
        return pruning.make_permanent(pruning.prune_to(m, sparsity, scope="layer"))

    assert layout_of(pruned(0.0), (20, 784)) == "dense" and layout_of(pruned(0.99), (20,)) == "dense"
    assert layout_of(pruned(0.5), (20, 784)) == "bitmap"  # a bit per place beats 4-bit gaps beside 32-bit values
    assert layout_of(pruned(0.99), (20, 784)) == "bitmap"  # long gaps need many fillers of 32 bits
    assert layout_of(pruned(0.9), (20, 784), 4) == "relative"  # 4-bit values: gap and value in one byte
    assert encoding.size(pruned(0.99)) < 0.1 * encoding.size(model(2))


def test_a_model_still_carrying_pruning_masks_is_neither_encoded_nor_sized():
    masked = pruning.prune_to(model(0), 0.5)  # its parameters are the unpruned weights: their bytes would be wrong
    for measure in (encoding.encode, encoding.size):
        with pytest.raises(ValueError, match="pruning masks"):
            measure(masked)


def test_decoding_the_wrong_architecture_is_refused():
    data = encoding.encode(model(0))
    with pytest.raises(packed_.FormatError, match=r"the payload does not fit this model's 4 parameter tensors "
                       r"\(15,910 values\): decode it into the architecture it was encoded from"):
        encoding.decode(data, models.build("dnn", {"widths": [20]}, (1, 28, 28), 10))


def test_pruning_and_quantization_tables_report_the_encoded_bytes(tiny_store, tiny_data):
    from minarch_core.engine import train
    store, configs = tiny_store
    run = store.get(configs[0])
    dense = run.model(train.load_data(run.config))
    curve = pruning.curve(run, sparsities=(0.0, 0.9))
    assert curve.size_bytes.iloc[0] == encoding.size(dense) and curve.size_bytes.iloc[1] < curve.size_bytes.iloc[0] / 3
    q = quantization.curve(run, precisions=("float32", 4))
    assert q.size_bytes.tolist() == [encoding.size(dense), encoding.size(dense, 4)]
