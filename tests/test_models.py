import pytest
import torch

from minarch_core.engine import models
from minarch_core.engine.errors import ConfigError


def dnn_count(inputs, widths, classes=10):
    sizes = [inputs, *widths, classes]
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


def vit_count(c, h, w, dim, depth, heads, patch, mlp_ratio, classes=10):
    tokens = (h // patch) * (w // patch) + 1
    block = 2 * 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + 2 * (dim * mlp_ratio * dim) + mlp_ratio * dim + dim
    return c * patch * patch * dim + dim + dim + tokens * dim + depth * block + 2 * dim + dim * classes + classes


@pytest.mark.parametrize("width, depth, expected", [
    (1, 1, 805), (1, 4, 811), (10, 1, 7_960), (10, 4, 8_290), (100, 1, 79_510), (100, 4, 109_810),
    (1000, 1, 795_010), (1000, 4, 3_798_010)])
def test_square_dnn_parameter_counts(width, depth, expected):
    model = models.build("dnn", {"widths": [width] * depth}, (1, 28, 28), 10)
    assert models.n_params(model) == expected == dnn_count(784, [width] * depth)


@pytest.mark.parametrize("shape, channels, expected", [
    ((1, 28, 28), 1, 6_780), ((1, 28, 28), 32, 216_650), ((3, 32, 32), 1, 9_038), ((3, 32, 32), 32, 288_906)])
def test_cnn_parameter_counts(shape, channels, expected):
    model = models.build("cnn", {"channels": channels}, shape, 10)
    c, h, w = shape
    assert models.n_params(model) == expected == 9 * c * channels + channels + channels * (h - 2) * (w - 2) * 10 + 10
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("shape, arch", [
    ((1, 28, 28), {}), ((3, 32, 32), {"patch": 4, "dim": 16, "depth": 3, "heads": 2, "mlp_ratio": 4})])
def test_vit_parameter_count_and_forward(shape, arch):
    full = models.normalise_arch("vit", arch, shape)
    model = models.build("vit", arch, shape, 10)
    assert models.n_params(model) == vit_count(*shape, **full)
    assert model(torch.randn(3, *shape)).shape == (3, 10)


def test_dnn_shape_is_linear_relu_stack():
    model = models.build("dnn", {"widths": [5, 3]}, (1, 28, 28), 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_phase1_grid_counts_match_the_paper():
    shapes = models.phase1_shapes()
    assert len(shapes) == 480
    assert [sum(s.depth == d for s in shapes) for d in (1, 2, 3, 4)] == [12, 36, 108, 324]
    assert all(s.widths[0] == s.size and len(s.pattern) == s.depth - 1 for s in shapes)


@pytest.mark.parametrize("size, pattern, widths", [
    (10, "+-", (10, 20, 10)), (10, "==", (10, 10, 10)), (1000, "++", (1000, 1000, 1000)), (1, "-", (1, 1)),
    (3, "+++", (3, 5, 10, 20)), (50, "--=", (50, 30, 20, 20))])
def test_pattern_widths_walk_the_ladder_and_clamp(size, pattern, widths):
    assert models.pattern_widths(size, pattern) == widths


def test_shape_of():
    assert [models.shape_of(w) for w in ([5], [5, 5], [5, 10], [10, 5, 5], [5, 10, 5])] == [
        "equal", "equal", "increasing", "decreasing", "mixed"]


@pytest.mark.parametrize("family, arch, message", [
    ("mlp", {}, "unknown family 'mlp'"),
    ("dnn", {"channels": 3}, r"unknown dnn setting\(s\) \['channels'\]"),
    ("dnn", {"widths": [0]}, "widths must be integer"),
    ("dnn", {"widths": []}, "non-empty list"),
    ("dnn", {"widths": "100"}, "non-empty list"),
    ("dnn", {"widths": [2.5]}, "widths must be integer"),
    ("cnn", {"channels": True}, "channels must be integer"),
    ("cnn", {"channels": 0}, r"channels must be integer\(s\) in 1..4096"),
])
def test_bad_architectures_name_the_problem(family, arch, message):
    with pytest.raises(ConfigError, match=message):
        models.normalise_arch(family, arch)


def test_vit_rejects_a_patch_that_does_not_tile_the_image():
    with pytest.raises(ConfigError, match="patch size 5 does not divide the 28x28 image"):
        models.build("vit", {"patch": 5}, (1, 28, 28), 10)
    with pytest.raises(ConfigError, match="not divisible by heads"):
        models.build("vit", {"dim": 10, "heads": 4}, (1, 28, 28), 10)


def test_vit_components_cover_its_weights_once():
    model = models.build("vit", {"dim": 8, "depth": 2, "heads": 2}, (1, 28, 28), 10)
    groups = models.components(model)
    assert list(groups) == ["patch embedding", "attention qkv", "attention projection", "MLP", "head",
                            "positions and norms"]
    named = [n for names in groups.values() for n in names]
    assert len(named) == len(set(named)) and {"embed.weight", "head.weight", "pos", "cls"} <= set(named)
    assert len(groups["MLP"]) == 4 and not any(n.endswith(".bias") for g in ("MLP", "head") for n in groups[g])
