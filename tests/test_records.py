"""One home per concept: a dataset, a family and a chapter are records; analysis tables belong to a study.

A new dataset or family is added here the way a user would add one (a record, and for a family a profile grid),
and must then appear everywhere: sweeps, analyses, chapters, the table of contents, the CLI."""
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import real_mnist, synthetic_arrays

from minarch_core import cli
from minarch_core.analyses import pruning, quantization, regimes
from minarch_core.book import chapter, parameters, pipeline
from minarch_core.engine import data, models, profiles, settings, sweep
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError
from minarch_core.engine.store import Store


@pytest.fixture
def shapes_dataset(monkeypatch, tmp_path):
    """A new 10-class 28x28 dataset, registered by its record alone (its images: the synthetic block patterns)."""
    root = tmp_path / "data"
    root.mkdir()
    np.savez(root / "shapes.npz", **synthetic_arrays(per_class_train=600, per_class_test=20, seed=3))
    monkeypatch.setitem(data.DATASETS, "shapes", data.DatasetSpec(
        "shapes", "Block shapes", difficulty=0, mean=(0.2,), std=(0.3,), input_shape=(1, 28, 28)))
    monkeypatch.setenv("MINARCH_DATA", str(root))
    return root


def test_a_new_dataset_appears_in_sweeps_chapters_and_the_table_of_contents(shapes_dataset, tmp_path, capsys):
    configs = profiles.get("smoke").configs("shapes")
    table = sweep.run(configs, Store(tmp_path / "results"), progress=False)
    assert len(table) == len(configs) and set(table.dataset) == {"shapes"}
    features = regimes.run_features(table, Store(tmp_path / "results").histories("shapes"))
    assert (features.failed == (features.test_acc < 0.1 + 0.1)).all()  # chance from the record's 10 classes

    ch = chapter.open_chapter(dataset="shapes", profile="smoke", results=str(tmp_path / "results"))
    assert ch.dataset == "shapes" and len(ch.ask("runs")) == len(configs)
    assert set(ch.ask("configurations").family) == set(models.FAMILIES)

    toc = pipeline.table_of_contents()
    assert toc["parts"][1] == {"caption": "Block shapes", "chapters": [
        {"file": f"book/shapes/{c}"} for c in ("sweep", "regimes", "pruning", "quantization", "smallest")]}  # easiest first
    assert "shapes" in data.by_difficulty() and data.by_difficulty()[0] == "shapes"
    cli.main(["sweep", "--dataset", "shapes", "--profile", "smoke", "--family", "cnn", "--results",
              str(tmp_path / "results"), "--dry-run"])
    assert "4 runs, 0 not yet in" in capsys.readouterr().out


def test_a_dataset_record_knows_its_chance_and_its_patch():
    cifar = data.spec("cifar10")
    assert cifar.title == "CIFAR-10" and cifar.chance == 0.1 and models.default_patch(cifar.input_shape) == 8
    five = data.DatasetSpec("five", "Five", 9, (0.5,), (0.5,), (1, 12, 12), n_classes=5)
    assert five.chance == 0.2 and models.default_patch(five.input_shape) == 3
    with pytest.raises(ConfigError, match="dataset name 'studies'"):
        data.DatasetSpec("studies", "S", 1, (0.5,), (0.5,), (1, 8, 8))


PLUGIN = Path(__file__).parent / "plugins" / "pooled.py"


@pytest.fixture
def plugin(monkeypatch):
    """The throwaway family of ``tests/plugins/pooled.py`` (average pooling, then a linear classifier), registered
    as a user registers one: named in MINARCH_PLUGINS for every process a test starts, and imported here. What it
    adds to the records goes when the test ends."""
    monkeypatch.setattr(models, "FAMILIES", dict(models.FAMILIES))
    monkeypatch.setattr(profiles, "PROFILES", dict(profiles.PROFILES))
    monkeypatch.setenv("MINARCH_PLUGINS", str(PLUGIN))
    runpy.run_path(str(PLUGIN))
    return models.family("pooled")


def test_a_new_family_needs_its_record_and_a_profile_grid_only(plugin, tiny_root, tmp_path):
    study = profiles.Profile("pooled", seeds=2, epochs=2, train_per_class=50, val_per_class=20,
                             grids={"pooled": profiles.Grid("pooled", (2, 4, 7))})
    configs = study.configs("mnist")
    table = sweep.run(configs, Store(tmp_path / "r"), data_root=tiny_root, progress=False)
    assert set(table.model) == {"Pooled /2", "Pooled /4", "Pooled /7"} and "pool" in models.arch_columns()
    assert {len(t) for t in sweep.bundles(configs, "cpu")} == {2}  # no fused form: one architecture per bundle,
    # its seeds stacked, as the record says they are on a CPU
    store = Store(tmp_path / "r")
    features = regimes.run_features(table, store.histories("mnist"))
    configs_ = regimes.configurations(features)
    assert set(configs_.pool) == {2, 4, 7}
    run = store.runs_of(table[table.pool == 7].head(1))[0]
    curve = pruning.curve(run, sparsities=(0, 0.5), data_root=tiny_root)
    assert curve.achieved.tolist() == [0, 0.5]
    q = quantization.curve(run, precisions=("float32", 4), data_root=tiny_root)
    assert q.size_bytes.iloc[1] < q.size_bytes.iloc[0]


@real_mnist
@pytest.mark.book
def test_a_family_from_a_plugin_is_in_every_smoke_chapter_and_in_recommend(plugin, tmp_path, capsys):
    """The throwaway family in a smoke book trained long enough for it to learn: every chapter shows it, and
    recommend answers within it (the chapters' kernels and the sweep's workers import the plugin themselves)."""
    results, study = str(tmp_path / "results"), {"epochs": 6, "train_per_class": 200}
    pipeline.build("smoke", ["mnist"], workers=2, results=results, root=tmp_path / "book", html=False, **study)
    notebooks = sorted((tmp_path / "book" / "book").rglob("*.ipynb"))
    assert {n.stem for n in notebooks} == set(parameters.CHAPTERS)
    for notebook in notebooks:
        assert plugin.title in notebook.read_text(), f"the {notebook.stem} chapter does not show the plugin's family"
    assert cli.main(["recommend", "--dataset", "mnist", "--profile", "smoke", "--epochs", "6", "--train-per-class",
                     "200", "--results", results, "--family", "pooled", "--min-accuracy", "0.5"]) == 0
    assert "Pooled /" in capsys.readouterr().out


def test_the_committed_table_of_contents_is_the_records():
    assert yaml.safe_load((pipeline.ROOT / "_toc.yml").read_text()) == pipeline.table_of_contents(), \
        "_toc.yml is out of date: write pipeline.toc_text() to it"


def test_analysis_tables_are_not_runs_and_reading_the_store_moves_nothing(tiny_store, tmp_path):
    store, configs = tiny_store
    tables = store.tables(profiles.get("smoke"))
    tables.save("mnist", "configurations", pd.DataFrame({"a": [1, 2]}))
    (store.root / "mnist" / "analyses").mkdir(exist_ok=True)  # what older versions wrote there
    (store.root / "mnist" / "analyses" / "quick-minimal.parquet").write_bytes(b"PAR1")
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    with np.errstate(all="ignore"):
        assert len(store.table("mnist")) == len(configs) and len(store.table()) == len(configs)
    assert sorted(p.relative_to(store.root) for p in store.root.rglob("*")) == before
    assert not (store.root / "mnist" / ".corrupt").exists()


def test_two_studies_in_one_store_keep_their_own_tables(tiny_store):
    store, _ = tiny_store
    a = chapter.open_chapter(dataset="mnist", profile="smoke", seeds=2, results=str(store.root))
    b = chapter.open_chapter(dataset="mnist", profile="smoke", seeds=3, results=str(store.root))
    assert a.study.study_id != b.study.study_id and a.study.study_id.startswith("smoke-")
    a.store.tables(a.study).save("mnist", "minimal", pd.DataFrame({"min_params": [100]}))
    b.store.tables(b.study).save("mnist", "minimal", pd.DataFrame({"min_params": [200]}))
    assert a.store.tables(a.study).load("mnist", "minimal").min_params.tolist() == [100]
    assert b.store.tables(b.study).load("mnist", "minimal").min_params.tolist() == [200]
    again = chapter.open_chapter(dataset="mnist", profile="smoke", seeds=2, results=str(store.root))
    assert again.store.tables(again.study).load("mnist", "minimal").min_params.tolist() == [100]  # the same study finds its tables
    assert (a.store.tables(a.study).folder / "study.json").exists()
    with pytest.raises(ConfigError, match="no regimes table for mnist in study smoke-"):
        a.store.tables(a.study).load("mnist", "regimes")


def test_the_chapter_context_carries_device_and_data_root(tmp_path):
    ch = chapter.open_chapter(dataset="cifar10", profile="smoke", device="cpu", data=str(tmp_path))
    assert ch.where == {"device": "cpu", "data_root": tmp_path}
    with pytest.raises(parameters.ParameterError, match="unknown notebook parameter\\(s\\) \\['colour'\\]"):
        chapter.open_chapter(colour="blue")
    with pytest.raises(ConfigError, match="device 'cuda:7' was asked for but CUDA is not available"):
        chapter.open_chapter(device="cuda:7")


@pytest.mark.parametrize("call, message", [
    (lambda: profiles.get("smoke").replace(seeds=0), "profile 'smoke': 'seeds' must be an integer in 1..1,000"),
    (lambda: profiles.study("quick", epochs=-1), "'epochs' must be an integer in 1..10,000"),
    (lambda: regimes.Thresholds(max_std=-0.1), "regime threshold 'max_std' must be a number in 0..1"),
    (lambda: regimes.Thresholds(fail_margin=float("nan")), "regime threshold 'fail_margin' must be a number"),
    (lambda: RunConfig("mnist", "cnn", {"channels": 0}), "cnn channels must be integer\\(s\\) in 1..4096"),
])
def test_every_number_is_range_checked_where_it_enters(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_plugin_that_cannot_be_imported_is_named_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"names .*missing\.py, which is not a Python file"):
        settings.load_plugins(str(tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="module 'no_such_plugin_module', which cannot be imported"):
        settings.load_plugins("no_such_plugin_module")
    with pytest.raises(ConfigError, match="profile 'smoke' has a grid 'cnn' already"):
        profiles.add_grid("smoke", "cnn", profiles.Grid("cnn", (2,)))
    with pytest.raises(parameters.ParameterError, match=r"unknown book parameter\(s\) \['widths'\]"):
        pipeline.build("smoke", ["mnist"], widths=[3])


GARMENTS = (("shirt", 6), ("sneaker", 7), ("bag", 8))  # Fashion-MNIST classes, as a user's folder names them


def garments_folder(root: Path, train: int = 150, test: int = 50, side: int = 40) -> Path:
    """A user's ImageFolder of real images at a size no built-in dataset has: three Fashion-MNIST classes, padded
    to 40x40 and coloured (RGB), as PNG files."""
    from PIL import Image
    x_train, y_train, x_test, y_test = data.arrays("fashion_mnist")
    pad = (side - 28) // 2
    for part, x, y, n in (("train", x_train, y_train, train), ("test", x_test, y_test, test)):
        for name, label in GARMENTS:
            folder = root / "garments" / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(x[y == label][:n]):
                grey = np.pad(img[..., 0], pad)
                Image.fromarray(np.stack([grey, grey // 2, 255 - grey], -1)).save(folder / f"{i}.png")
    return root


@pytest.mark.real_data("fashion_mnist")
@pytest.mark.book
def test_a_folder_of_ones_own_images_makes_a_smoke_book_and_an_exported_model(tmp_path, monkeypatch, capsys):
    """A user's folder at 40x40 RGB with 3 classes: every chapter names it, the method chapter shows its inferred
    classes and shape; recommend answers on it, export writes it, and the exported ONNX runs."""
    import onnxruntime as ort
    root = garments_folder(tmp_path / "data")
    monkeypatch.setenv("MINARCH_DATA", str(root))
    monkeypatch.setattr(data, "DATASETS", dict(data.DATASETS))
    results = str(tmp_path / "results")
    pipeline.build("smoke", ["garments"], workers=2, results=results, root=tmp_path / "book", html=False)
    notebooks = sorted((tmp_path / "book" / "book").rglob("*.ipynb"))
    assert {n.stem for n in notebooks} == set(parameters.CHAPTERS)
    for notebook in notebooks:
        assert "garments" in notebook.read_text(), f"the {notebook.stem} chapter does not name the dataset"
    method = (tmp_path / "book" / "book" / "method.ipynb").read_text()
    assert "3: bag, shirt, sneaker" in method and "3×40×40" in method
    capsys.readouterr()
    code = cli.main(["recommend", "--dataset", "garments", "--profile", "smoke", "--results", results,
                     "--min-accuracy", "0.5"])
    assert code in (0, 1) and "garments" in capsys.readouterr().out
    out = tmp_path / "model"
    assert cli.main(["export", "--dataset", "garments", "--profile", "smoke", "--results", results,
                     "--min-accuracy", "0.4", "--out", str(out)]) == 0
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(out / "model.onnx"), options)
    logits = session.run(None, {"image": np.zeros((2, 3, 40, 40), np.float32)})[0]
    assert logits.shape == (2, 3) and np.isfinite(logits).all()
