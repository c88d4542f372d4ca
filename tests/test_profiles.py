import pytest

from minarch_core.engine import data, models, profiles
from minarch_core.engine.errors import ConfigError


def test_paper_profile_is_the_papers_full_grid():
    p = profiles.get("paper")
    assert p.seeds == 30 and p.train_per_class is None
    assert len(p.grids["shapes"].values) == 480
    assert p.grids["dnn"].values == tuple((w,) * d for d in (1, 2, 3, 4) for w in models.LADDER)
    assert p.grids["cnn"].values == tuple(range(1, 33))
    cnn = p.configs("cifar10", ["cnn"])
    assert len(cnn) == 32 * 30 and {c.seed for c in cnn} == set(range(30))


def test_configs_are_unique_and_follow_overrides():
    p = profiles.get("smoke").replace(seeds=3, epochs=1)
    cfgs = p.configs("mnist", ["shapes", "dnn"], lr=0.01)
    assert len({c.run_id for c in cfgs}) == len(cfgs)  # depth-1 shapes and square nets coincide: listed once
    assert {c.epochs for c in cfgs} == {1} and {c.lr for c in cfgs} == {0.01} and {c.seed for c in cfgs} == {0, 1, 2}


def test_vit_patch_follows_the_image_size_so_every_dataset_has_16_patches():
    assert {c.arch["patch"] for c in profiles.get("smoke").configs("cifar10", ["vit"])} == {8}
    assert {c.arch["patch"] for c in profiles.get("smoke").configs("mnist", ["vit"])} == {7}
    for name in ("mnist", "cifar10"):
        cfg = profiles.get("smoke").configs(name, ["vit"])[0]
        vit = models.build("vit", cfg.arch, data.spec(name).input_shape, 10)
        assert vit.pos.shape[1] == 16 + 1  # patches and the class token


@pytest.mark.parametrize("call, message", [
    (lambda: profiles.get("huge"), "unknown profile 'huge': choose one of \\['smoke', 'quick', 'paper'\\]"),
    (lambda: profiles.get("smoke").configs("mnist", ["mlp"]), "unknown grid\\(s\\) \\['mlp'\\]"),
    (lambda: profiles.get("smoke").replace(seed=3), "unknown profile field\\(s\\) \\['seed'\\]"),
])
def test_bad_profile_input(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
