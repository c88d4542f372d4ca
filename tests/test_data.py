import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_cifar10, real_mnist, synthetic_arrays

from minarch_core.engine import data, settings
from minarch_core.engine.errors import ConfigError, DataCorruptError, DataMissingError


def fresh():
    data._load_cpu.cache_clear()
    data.arrays.cache_clear()


def snapshot(root):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'svhn'.*cifar10.*fashion_mnist.*mnist"):
        data.load("svhn")


def test_splits_are_stratified_disjoint_and_deterministic(tiny_root):
    fresh()
    d = data.load("mnist", root=tiny_root, val_per_class=50)
    assert (len(d.train), len(d.val), len(d.test)) == (5100, 500, 200)
    assert d.val.y.bincount().tolist() == [50] * 10
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    rows = lambda s: {bytes(r) for r in s.x.flatten(1).numpy()}  # noqa: E731  (noise makes every image unique)
    assert not rows(d.train) & rows(d.val)
    sub = data.load("mnist", root=tiny_root, val_per_class=50, train_per_class=7, subset_seed=1)
    assert sub.train.y.bincount().tolist() == [7] * 10
    assert rows(sub.train) <= rows(d.train)
    fresh()
    again = data.load("mnist", root=tiny_root, val_per_class=50, train_per_class=7, subset_seed=1)
    assert torch.equal(again.train.x, sub.train.x) and torch.equal(again.val.x, d.val.x)
    other = data.load("mnist", root=tiny_root, val_per_class=50, train_per_class=7, subset_seed=2)
    assert not torch.equal(other.train.x, sub.train.x)


def test_stratified_indices_ignore_row_order():
    y = np.repeat(np.arange(3), 100)  # sorted by class, like the CIFAR-10 array file
    idx = data.stratified_indices(y, 10, seed=0)
    assert np.bincount(y[idx]).tolist() == [10, 10, 10]
    assert not np.array_equal(idx[:10], np.arange(10))  # a random draw, not a prefix
    with pytest.raises(ConfigError, match="only 100 are available"):
        data.stratified_indices(y, 101, seed=0)


def test_npz_cache_makes_the_second_load_skip_the_source(tiny_root, monkeypatch):
    fresh()
    first = data.arrays("mnist", tiny_root)
    fresh()
    monkeypatch.setattr(data, "_read_npz", lambda *a: pytest.fail("the cache should have answered"))
    assert all(np.array_equal(a, b) for a, b in zip(first, data.arrays("mnist", tiny_root)))


def test_cache_is_rebuilt_when_the_source_changes(tmp_path):
    np.savez(tmp_path / "mnist.npz", **synthetic_arrays(per_class_train=510, seed=0))
    fresh()
    a = data.arrays("mnist", tmp_path)[0]
    time.sleep(0.01)
    np.savez(tmp_path / "mnist.npz", **synthetic_arrays(per_class_train=510, seed=1))
    fresh()
    assert not np.array_equal(a, data.arrays("mnist", tmp_path)[0])


def test_missing_files_without_network_fail_fast_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda: False)
    fresh()
    start = time.perf_counter()
    with pytest.raises(DataMissingError) as err:
        data.load("mnist", root=tmp_path)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    for needed in (str(tmp_path), "MNIST/raw/train-images-idx3-ubyte.gz", "mnist.npz", "network is unreachable",
                   "MINARCH_DATA"):
        assert needed in message


def test_network_probe_answers_quickly_when_nothing_listens():
    start = time.perf_counter()
    assert data.network_available("127.0.0.1", timeout=2) is False
    assert time.perf_counter() - start < 3


def test_truncated_npz_is_reported_as_corrupt(tmp_path):
    np.savez(tmp_path / "mnist.npz", **synthetic_arrays(per_class_train=510))
    blob = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(blob[: len(blob) // 2])
    fresh()
    with pytest.raises(DataCorruptError, match="truncated or damaged"):
        data.load("mnist", root=tmp_path)


def test_npz_without_the_expected_arrays_is_reported(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28, 1), np.uint8))
    fresh()
    with pytest.raises(DataCorruptError, match=r"lacks the arrays \['y_train', 'x_test', 'y_test'\]"):
        data.load("mnist", root=tmp_path)


def test_npz_of_the_wrong_image_shape_is_reported(tmp_path):
    np.savez(tmp_path / "cifar10.npz", **synthetic_arrays(per_class_train=510))  # MNIST-shaped images
    fresh()
    with pytest.raises(DataCorruptError, match=r"expected x_\* as \(N,32,32,3\) uint8 \(cifar10 images\)"):
        data.load("cifar10", root=tmp_path)


def test_cifar10_npz_is_checked_against_the_published_checksums(tmp_path):
    arrays = synthetic_arrays(per_class_train=510)
    for key in ("x_train", "x_test"):  # 28x28x1 -> 32x32x3, CIFAR-10's shape
        arrays[key] = np.repeat(np.pad(arrays[key], ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=3)
    np.savez(tmp_path / "cifar10.npz", **arrays)
    fresh()
    with pytest.raises(DataCorruptError, match="x_train has SHA-256 .* expected 61bea91e"):
        data.load("cifar10", root=tmp_path)


WATCHED: list = []  # (folder, writes attempted under it) while a test watches; read by the audit hook below
WRITES = ("os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
          "os.utime", "os.truncate", "shutil.copyfile", "shutil.move")


def _audit(event, args):
    """Records every attempt to write under a watched folder: an open for writing (by mode or flags), a rename,
    a removal, a new folder or link, a change of mode or time. Running as root, CI could write to a read-only
    folder: what matters is that no write is attempted."""
    if not WATCHED or (event != "open" and event not in WRITES):
        return
    folder, writes = WATCHED[-1]
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        paths = [path] if writing else []
    elif event in ("os.symlink", "os.link", "shutil.copyfile"):
        paths = [args[1]]  # the new name is written; the target is only read
    else:
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    for p in paths:
        if not isinstance(p, int) and os.path.abspath(os.fsdecode(p)).startswith(str(folder)):
            writes.append((event, os.fsdecode(p)))


sys.addaudithook(_audit)


@real_mnist
def test_real_mnist_read_only_root_stays_untouched(tmp_path, monkeypatch):
    root = settings.data_root().resolve()
    monkeypatch.setenv("MINARCH_CACHE", str(tmp_path / "fresh-cache"))  # nothing cached: the root is read
    before, writes = snapshot(root), []
    fresh()
    WATCHED.append((root, writes))
    try:
        d = data.load("mnist")
    finally:
        WATCHED.pop()
    assert (len(d.train), len(d.val), len(d.test)) == (55000, 5000, 10000)
    assert abs(d.train.x.mean().item()) < 0.01 and abs(d.train.x.std().item() - 1) < 0.01
    assert writes == [] and snapshot(root) == before  # unpacked and cached elsewhere, not even attempted there
    assert (tmp_path / "fresh-cache" / "arrays" / "mnist.npz").exists()  # the fresh cache was built from the root


@real_mnist
def test_corrupt_archive_fails_its_md5(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(settings.data_root() / "MNIST" / "raw", raw)
    blob = (raw / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[:-100])
    fresh()
    with pytest.raises(DataCorruptError, match=r"t10k-labels-idx1-ubyte.gz fails its MD5 checksum"):
        data.load("mnist", root=tmp_path)


@real_mnist
def test_real_mnist_matches_the_archives():
    with gzip.open(settings.data_root() / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    fresh()
    assert np.array_equal(data.arrays("mnist")[3], labels)


@real_cifar10
def test_real_cifar10_class_sorted_file_gives_stratified_splits():
    fresh()
    d = data.load("cifar10", train_per_class=20)
    assert d.input_shape == (3, 32, 32)
    assert d.train.y.bincount().tolist() == [20] * 10 and d.val.y.bincount().tolist() == [500] * 10
    assert d.test.y.bincount().tolist() == [1000] * 10
    means = d.test.x.mean(dim=(0, 2, 3))
    assert means.abs().max() < 0.05  # normalised with the published per-channel statistics


def _load_labels(root):
    return data.arrays("mnist", root)[3].tolist()


@real_mnist
def test_workers_starting_together_build_the_cache_once(tmp_path, monkeypatch):
    # Four processes on a fresh cache: unpacking the archives must not race (a real failure, found by a sweep).
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    monkeypatch.setenv("MINARCH_CACHE", str(tmp_path / "fresh-cache"))
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        labels = list(pool.map(_load_labels, [str(settings.data_root())] * 4))
    assert all(x == labels[0] for x in labels) and len(labels[0]) == 10000


@pytest.mark.parametrize("shape", [(7,), (3, 5)])  # one minibatch; one per stacked seed
def test_rows_gathers_what_advanced_indexing_gathers(shape):
    split = data.Split(torch.randn(40, 3, 4, 4), torch.arange(40))
    idx = torch.randperm(40)[:int(np.prod(shape))].view(shape)
    x, y = split.rows(idx)
    assert torch.equal(x, split.x[idx]) and torch.equal(y, split.y[idx])


@pytest.mark.subprocess
def test_a_real_data_test_run_without_the_data_fails_naming_the_fix_unless_left_out_on_purpose(tmp_path):
    """pytest without MINARCH_DATA must not pass green with the real-data tests never run."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "tests/test_data.py::test_real_mnist_matches_the_archives"]
    env = {**os.environ, "MINARCH_DATA": str(tmp_path / "empty")}
    done = subprocess.run(command, cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "1 error" in done.stdout, done.stdout[-2000:]  # failed in its setup
    assert "mnist not in the data root" in done.stdout and "point MINARCH_DATA at the datasets" in done.stdout
    left_out = subprocess.run([*command, "-m", "not real_data"], cwd=Path(__file__).parents[1], env=env,
                              capture_output=True, text=True)
    assert "1 deselected" in left_out.stdout, left_out.stdout[-2000:]


# -- datasets of one's own -------------------------------------------------------------------------------------------

def own_arrays(classes=3, side=12, channels=3, train=40, test=10, seed=0):
    """Images of ``classes`` classes, each class a brightness band plus noise, so the data says which is which."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (train, test):
        y = np.repeat(np.arange(classes), n).astype(np.int64)
        x = np.clip(y[:, None, None, None] * 60 + rng.integers(0, 40, (len(y), side, side, channels)), 0, 255)
        out += [x.astype(np.uint8), y]
    return out


def write_own(root: Path, name: str, arrays_, layout: str = "npz", classes=None):
    x_train, y_train, x_test, y_test = arrays_
    if layout == "npz":
        np.savez(root / f"{name}.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        return
    from PIL import Image
    classes = classes or [f"class_{k}" for k in range(int(y_train.max()) + 1)]
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / name / part / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i}.png")


@pytest.fixture
def own_root(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATASETS", dict(data.DATASETS))  # what a test registers leaves with it
    fresh()
    return tmp_path


def test_a_folder_of_ones_own_is_a_dataset_read_from_its_data(own_root, capsys):
    write_own(own_root, "leaves", own_arrays(), "folder", classes=["ash", "beech", "cedar"])
    assert "leaves" in data.available(own_root)
    s = data.spec("leaves", own_root)
    assert (s.classes, s.input_shape, s.n_classes, s.title) == (("ash", "beech", "cedar"), (3, 12, 12), 3, "leaves")
    assert len(s.version) == 16 and s.difficulty > max(d.difficulty for d in data.DATASETS.values() if not d.version)
    assert "dataset 'leaves' (image folder): 3 classes (ash, beech, cedar), 12x12, 3 channel(s)" in \
        capsys.readouterr().err
    d = data.load("leaves", root=own_root, val_per_class=10)
    assert (len(d.train), len(d.val), len(d.test), d.n_classes) == (90, 30, 30, 3)
    x = d.train.x  # normalised by the statistics read from the training images
    assert abs(float(x.mean())) < 0.2 and abs(float(x.std()) - 1) < 0.2


def test_the_same_images_as_an_array_file_give_the_same_record_and_the_same_runs(tmp_path, own_root, monkeypatch):
    from minarch_core.engine.config import RunConfig
    arrays_ = own_arrays(channels=1)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    write_own(tmp_path / "a", "leaves", arrays_, "folder")
    write_own(tmp_path / "b", "leaves", arrays_, "npz")
    specs, ids = [], []
    for folder in ("a", "b"):
        monkeypatch.setattr(data, "DATASETS", {k: v for k, v in data.DATASETS.items() if k != "leaves"})
        monkeypatch.setenv("MINARCH_DATA", str(tmp_path / folder))
        fresh()
        specs.append(data.spec("leaves"))
        ids.append(RunConfig("leaves", "dnn", {"widths": (4,)}).run_id)
    strip = lambda s: {**s.__dict__, "classes": None}  # noqa: E731  (a folder names its classes, an array file not)
    assert strip(specs[0]) == strip(specs[1]) and ids[0] == ids[1] and specs[1].classes == ("0", "1", "2")
    assert RunConfig("mnist", "dnn", {"widths": (4,)}).data_version is None  # built-in runs keep their ids


def test_a_changed_folder_never_serves_old_runs(own_root, monkeypatch):
    from minarch_core.engine.config import RunConfig
    write_own(own_root, "leaves", own_arrays(), "npz")
    monkeypatch.setenv("MINARCH_DATA", str(own_root))
    before = RunConfig("leaves", "dnn", {"widths": (4,)}).run_id
    write_own(own_root, "leaves", own_arrays(seed=1), "npz")
    monkeypatch.setattr(data, "DATASETS", {k: v for k, v in data.DATASETS.items() if k != "leaves"})
    fresh()
    assert RunConfig("leaves", "dnn", {"widths": (4,)}).run_id != before


def corrupt(case):
    x_train, y_train, x_test, y_test = own_arrays()
    if case == "labels skip a class":
        y_train = np.where(y_train == 1, 2, y_train)
    elif case == "one class":
        y_train, y_test = y_train * 0, y_test * 0
    elif case == "float labels":
        y_train = y_train + 0.5
    elif case == "shapes differ":
        x_test = x_test[:, :10, :10]
    elif case == "NaN":
        x_train = x_train.astype(np.float32)
        x_train[0, 0, 0, 0] = np.nan
    elif case == "outside [0, 255]":
        x_train = x_train.astype(np.float32) * 2
    return x_train, y_train, x_test, y_test


@pytest.mark.parametrize("case, message", [
    ("labels skip a class", r"integers 0\.\.K-1 with every class in training.*no training image of class\(es\) \[1\]"),
    ("one class", r"2 <= K"),
    ("float labels", r"must be integers 0\.\.K-1, got float64"),
    ("shapes differ", r"x_train's images are \(12, 12, 3\).*x_test's \(10, 10, 3\)"),
    ("NaN", r"x_train holds NaN"),
    ("outside [0, 255]", r"x_train lies in 0\.\.\d+: images must lie in \[0, 1\] or \[0, 255\]"),
])
def test_bad_arrays_of_ones_own_are_refused_naming_the_array_and_the_fix(own_root, case, message):
    write_own(own_root, "leaves", corrupt(case), "npz")
    with pytest.raises(DataCorruptError, match=message):
        data.spec("leaves", own_root)


def test_bad_folders_of_ones_own_are_refused_naming_the_file_or_classes(own_root):
    from PIL import Image
    write_own(own_root, "leaves", own_arrays(), "folder", classes=["ash", "beech", "cedar"])
    (own_root / "leaves" / "test" / "cedar").rename(own_root / "leaves" / "test" / "oak")
    with pytest.raises(DataCorruptError, match=r"only in train/ \['cedar'\], only in test/ \['oak'\]"):
        data.spec("leaves", own_root)
    (own_root / "leaves" / "test" / "oak").rename(own_root / "leaves" / "test" / "cedar")
    odd = own_root / "leaves" / "train" / "ash" / "0.png"
    Image.new("RGB", (20, 12)).save(odd)
    with pytest.raises(DataCorruptError, match=r"ash/0\.png is 20x12 but 149 of the 150 images are 12x12: every "
                                               r"image of a dataset must"):
        data.spec("leaves", own_root)


def test_a_class_too_small_for_the_profile_says_the_largest_train_per_class_that_fits(own_root):
    write_own(own_root, "leaves", own_arrays(train=40), "npz")
    with pytest.raises(ConfigError, match="class 0 .* has 40 training images; the validation split takes 10 per "
                                          "class, so the largest train_per_class that fits is 30"):
        data.load("leaves", root=own_root, val_per_class=10, train_per_class=35)


def test_a_folder_named_like_a_built_in_dataset_is_refused_with_the_fix(own_root):
    write_own(own_root, "cifar10", own_arrays(), "folder")
    assert data.available(own_root).count("cifar10") == 1 and data.spec("cifar10", own_root).version is None
    with pytest.raises(ConfigError, match="is an image folder named like the built-in dataset 'cifar10': rename it"):
        data.arrays("cifar10", own_root)


def test_an_own_dataset_given_by_the_data_option_is_found_by_the_command_line(tmp_path, own_root, monkeypatch, capsys):
    """--data (not MINARCH_DATA) names the data root: the command line chooses among its datasets and its runs carry
    the data's hash."""
    from minarch_core import cli
    write_own(own_root, "leaves", own_arrays(), "npz")
    monkeypatch.setenv("MINARCH_DATA", str(tmp_path / "elsewhere"))
    assert cli.main(["sweep", "--dataset", "leaves", "--profile", "smoke", "--data", str(own_root),
                     "--results", str(tmp_path / "results"), "--dry-run"]) == 0
    assert "runs, " in capsys.readouterr().out and settings.data_root() == own_root.resolve()
