import os

import numpy as np
import pytest

from minarch_core.engine import data, settings


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test writes its caches and results under tmp; the real data root is only ever read."""
    monkeypatch.setenv("MINARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("MINARCH_RESULTS", str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv("MINARCH_PROGRESS", "0")
    monkeypatch.setenv("MINARCH_DEVICE", "cpu")
    if "MINARCH_DATA" in os.environ:  # a --data or a chapter's data sets it for the process: restored after the test
        monkeypatch.setenv("MINARCH_DATA", os.environ["MINARCH_DATA"])
    else:
        monkeypatch.delenv("MINARCH_DATA", raising=False)


def synthetic_arrays(per_class_train=560, per_class_test=20, seed=0):
    """A learnable MNIST-shaped dataset: class c lights a 6x6 block at its own place, over noise."""
    rng = np.random.default_rng(seed)

    def make(per_class):
        y = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        x = rng.integers(0, 60, size=(len(y), 28, 28, 1), dtype=np.uint8)
        for c in range(10):
            r, k = divmod(c, 4)
            x[y == c, 2 + 8 * r:8 + 8 * r, 2 + 7 * k:8 + 7 * k] = 220
        return x, y

    x_train, y_train = make(per_class_train)
    x_test, y_test = make(per_class_test)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-data")
    np.savez(root / "mnist.npz", **synthetic_arrays())
    return root


def has_dataset(name):
    root = settings.data_root()
    return (root / f"{name}.npz").exists() or all((root / rel).exists() for rel, _ in data.spec(name).archives())


real_mnist = pytest.mark.real_data("mnist")  # a test that reads the real dataset: without it, it fails with the fix
real_cifar10 = pytest.mark.real_data("cifar10")
every_dataset = pytest.mark.real_data(*data.DATASETS)


def pytest_runtest_setup(item):
    """A test marked ``real_data`` fails, naming the fix, where its datasets are not in the data root: a run that
    means to skip them says so (``-m "not real_data"``, as ``make test-fast`` does), rather than passing green
    with the real-data tests never run."""
    for mark in item.iter_markers("real_data"):
        missing = [d for d in mark.args if not has_dataset(d)]
        if missing:
            pytest.fail(f"{', '.join(missing)} not in the data root {settings.data_root()}: point MINARCH_DATA at the "
                        f"datasets (make test does: ../shared/data), or leave the real-data tests out on purpose "
                        f"with -m 'not real_data'", pytrace=False)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_root):
    """A store with a few trained runs on the synthetic data: depth 1 and 2, and a CNN."""
    from minarch_core.engine import sweep
    from minarch_core.engine.config import RunConfig
    from minarch_core.engine.store import Store
    store = Store(tmp_path_factory.mktemp("tiny-store"))
    configs = [RunConfig("mnist", family, arch, epochs=4, val_per_class=20, train_per_class=60)
               for family, arch in (("dnn", {"widths": [32]}), ("dnn", {"widths": [32, 32]}), ("cnn", {"channels": 4}))]
    sweep.run(configs, store, data_root=tiny_root, device="cpu", progress=False)
    return store, configs


@pytest.fixture
def tiny_data(monkeypatch, tiny_root):
    """Point the data-root setting at the synthetic data (for code that loads a run's dataset itself)."""
    monkeypatch.setenv("MINARCH_DATA", str(tiny_root))
    return tiny_root


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The smoke-profile book of every dataset, built from an empty store in a folder of its own (two datasets'
    chapters at once): (its root, its HTML folder). Its tests carry ``every_dataset``."""
    from minarch_core.book import pipeline
    root = tmp_path_factory.mktemp("book")
    html = pipeline.build("smoke", list(data.DATASETS), workers=2, results=str(root / "results"), root=root)
    return root, html
