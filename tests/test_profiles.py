import pytest

from minarch_core.engine import compression, data, models, profiles
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


def every_grid_change():
    """One changed value of every field of the compression grid that its slice varies, each a valid grid."""
    grid = compression.DEFAULT
    yield "seeds", grid.replace(seeds=4)
    yield "tolerance", grid.replace(tolerance=0.02)
    yield "curve_images", grid.replace(curve_images=100)
    yield "curve_seed", grid.replace(curve_images=100, curve_seed=1)
    changes = {"sparsities": lambda s: (*s.sparsities[:-1], 0.42), "precisions": lambda s: s.precisions[:-1],
               "epochs": lambda s: s.epochs + 1, "scopes": lambda s: ("layer",),
               "settings": lambda s: (("asymmetric", "tensor"),)}
    for name in ("pruning", "quantization", "frontier", "recovery", "components"):
        for field, change in changes.items():
            if field not in compression.FIXED[name] and not (name in ("frontier", "recovery") and field == "settings"):
                yield f"{name}.{field}", grid.replace(**{name: {field: change(getattr(grid, name))}})
    yield "frontier and recovery settings", grid.replace(frontier={"settings": (("asymmetric", "channel"),)},
                                                         recovery={"settings": (("asymmetric", "channel"),)})


def test_every_field_of_the_compression_grid_changes_the_study_id():
    quick = profiles.get("quick")
    ids = {quick.study_id}
    for field, grid in every_grid_change():
        changed = quick.replace(compression=grid)
        assert changed.study_id not in ids, field
        ids.add(changed.study_id)
    assert quick.replace(compression=compression.Compression(curve_images=200)).study_id == quick.study_id  # equal
    # grids, one id


@pytest.mark.parametrize("change, message", [
    ({"frontier": {"precisions": (8, "int4")}}, r"frontier\.precisions: unknown precision 'int4'.*1\.\.16"),
    ({"quantization": {"precisions": (17,)}}, r"quantization\.precisions: unknown precision 17"),
    ({"pruning": {"sparsities": (0.0, 1.0)}}, r"pruning\.sparsities: 1\.0 is not a sparsity.*\[0, 1\)"),
    ({"frontier": {"sparsities": (-0.1,)}}, r"frontier\.sparsities"),
    ({"pruning": {"scopes": ("row",)}}, r"pruning\.scopes: unknown pruning scope 'row'"),
    ({"quantization": {"settings": (("symmetric", "row"),)}}, r"quantization\.settings"),
    ({"recovery": {"precisions": ("float16",)}}, r"recovery\.precisions: .*integer bit widths"),
    ({"recovery": {"epochs": -1}}, r"recovery\.epochs"),
    ({"seeds": 0}, r"seeds"), ({"tolerance": 1.5}, r"tolerance"),
    ({"curve_images": 0}, r"curve_images: 0; test images per class for the curves are an integer >= 1, or None"),
    ({"curve_images": 2.5}, r"curve_images: 2\.5;"), ({"curve_seed": -1}, r"curve_seed: -1; an integer >= 0"),
    ({"frontier": {"settings": (("symmetric", "channel"), ("asymmetric", "channel"))}}, r"frontier\.settings"),
    ({"frontier": {"scopes": ("layer",)}}, r"frontier\.scopes: the frontier slice does not vary its scopes"),
    ({"quantization": {"sparsities": (0.0, 0.5)}}, r"quantization\.sparsities: .*does not vary"),
    ({"pruning": {"precisions": ("float32", 8)}}, r"pruning\.precisions: .*does not vary"),
])
def test_a_bad_compression_grid_names_its_field(change, message):
    with pytest.raises(ConfigError, match=message):
        compression.DEFAULT.replace(**change)
