import pytest
import torch

from minarch_core.engine import models
from minarch_core.engine.config import RunConfig
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
    with pytest.raises(ConfigError, match=r"patch size 5 does not divide the 28x28 image: choose the knob 'patch' "
                                          r"among the divisors of both sides \[1, 2, 4, 7, 14, 28\], or leave it "
                                          r"unset \(7 here\)"):
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


# -- the hybrids: a convolutional stem feeding an MLP or a transformer ------------------------------------------------

SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def conv_mlp_count(c, h, w, channels, pool, ratio, classes=10):
    side_h, side_w = (h + 1) // 2 // pool, (w + 1) // 2 // pool
    hidden = ratio * channels
    return c * 9 * channels + channels + channels * side_h * side_w * hidden + hidden + hidden * classes + classes


@pytest.mark.parametrize("dataset", list(SHAPES))
@pytest.mark.parametrize("arch", [{"channels": 1}, {"channels": 16}, {"channels": 5, "pool": 3, "ratio": 2}])
def test_conv_mlp_builds_for_every_dataset_and_counts_as_torch_does(dataset, arch):
    shape = SHAPES[dataset]
    full = models.normalise_arch("convmlp", arch, shape)
    model = models.build("convmlp", arch, shape, 10)
    assert models.n_params(model) == sum(p.numel() for p in model.parameters()) == conv_mlp_count(*shape, **full)
    assert full["pool"] == (arch.get("pool") or 2)  # at most 8x8 positions: 7x7 on 28x28, 8x8 on 32x32
    assert model(torch.randn(3, *shape)).shape == (3, 10)
    assert list(models.components(model)) == ["convolutional stem", "MLP hidden layer", "classifier"]


@pytest.mark.parametrize("dataset", list(SHAPES))
@pytest.mark.parametrize("arch", [{}, {"dim": 32, "depth": 2, "heads": 4, "pool": 2, "mlp_ratio": 4}])
def test_conv_vit_builds_for_every_dataset_and_counts_as_torch_does(dataset, arch):
    shape = SHAPES[dataset]
    full = models.normalise_arch("convvit", arch, shape)
    model = models.build("convvit", arch, shape, 10)
    c, h, w = shape
    tokens = ((h + 1) // 2 // full["pool"]) * ((w + 1) // 2 // full["pool"])
    assert tokens <= 64 and (arch or tokens == 16)  # by default the ViT's own 16 tokens, on every image size
    vit_like = vit_count(c, h, w, full["dim"], full["depth"], full["heads"], 1, full["mlp_ratio"]) \
        - c * full["dim"] - (h * w + 1) * full["dim"]  # the ViT's count without its 1x1 patches and their positions
    stem = c * 9 * full["dim"]  # a 3x3 convolution instead of the patch embedding's weights
    assert models.n_params(model) == sum(p.numel() for p in model.parameters()) == vit_like + stem + (tokens + 1) * full["dim"]
    assert model(torch.randn(3, *shape)).shape == (3, 10)
    groups = models.components(model)
    assert list(groups)[0] == "convolutional stem" and groups["convolutional stem"] == ["embed.0.weight"]


@pytest.mark.parametrize("family, arch, shape, message", [
    ("convmlp", {"channels": 0}, (1, 28, 28), r"channels must be integer\(s\) in 1..4096"),
    ("convmlp", {"ratio": 65}, (1, 28, 28), r"ratio must be integer\(s\) in 1..64"),
    ("convmlp", {"width": 4}, (1, 28, 28), r"unknown convmlp setting\(s\) \['width'\]"),
    ("convmlp", {"pool": 15}, (1, 28, 28), "pool 15 downsamples the stem's 14x14 map of a 28x28 image below one "
                                          r"position: pick pool in 1..14"),
    ("convvit", {"pool": 17}, (3, 32, 32), r"below one position: pick pool in 1..16"),
    ("convvit", {"dim": 10, "heads": 4}, (1, 28, 28), "dim 10 is not divisible by heads 4"),
    ("convvit", {"depth": 0}, (1, 28, 28), r"depth must be integer\(s\) in 1..64"),
])
def test_hybrids_refuse_bad_knobs_before_any_training(family, arch, shape, message):
    with pytest.raises(ConfigError, match=message):
        models.normalise_arch(family, arch, shape)
    with pytest.raises(ConfigError, match=message):  # a run config checks them where it is made
        RunConfig("cifar10" if shape[0] == 3 else "mnist", family, arch)


def test_the_records_name_the_shaped_families_and_the_hybrids_parents():
    assert models.shaped() == ["dnn"]
    assert {name: models.family(name).parents for name in models.hybrids()} == {
        "convmlp": ("cnn", "dnn"), "convvit": ("cnn", "vit")}
    with pytest.raises(ConfigError, match="family 'cnn' exists already"):
        models.register(models.family("cnn"))


@pytest.mark.parametrize("shape, patch", [((1, 28, 28), 7), ((3, 32, 32), 8), ((3, 40, 40), 10), ((3, 64, 64), 16),
                                          ((3, 30, 30), 6), ((1, 30, 42), 6), ((1, 13, 13), 1)])
def test_the_default_patch_tiles_every_image_in_about_a_four_by_four_grid(shape, patch):
    assert models.default_patch(shape) == patch
    model = models.build("vit", {"dim": 8, "heads": 2}, shape, 100)  # and a hundred classes
    assert model(torch.zeros(2, *shape)).shape == (2, 100)


@pytest.mark.parametrize("shape, classes", [((3, 64, 64), 100), ((1, 40, 30), 2)])
def test_every_family_follows_an_image_size_and_class_count_of_ones_own(shape, classes):
    """The CNN's head, the ViT's patches and the hybrids' pooling follow the image; the classifier the classes."""
    from minarch_core.engine import profiles
    smoke = profiles.get("smoke")
    for name, grid in smoke.grids.items():
        arch = grid.archs()[-1]
        model = models.build(grid.family, models.normalise_arch(grid.family, arch, shape), shape, classes)
        assert model(torch.zeros(2, *shape)).shape == (2, classes), name
