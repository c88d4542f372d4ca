import os
import subprocess
import sys

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError

BASE = dict(dataset="mnist", family="dnn", arch={"widths": [100]})
DEFAULTS = dict(seed=0, epochs=10, batch_size=128, optimizer="adam", lr=1e-3, weight_decay=0.0,
                loss="cross_entropy", train_per_class=None, val_per_class=500, subset_seed=0)


def test_run_id_is_pinned():
    # The identity scheme is a contract with every store ever written: change it only with SEMANTICS.
    assert RunConfig(**BASE).run_id == "9ac6180e5f5030f1dd78"


@hsettings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(DEFAULTS)), st.just(None)), st.randoms())
def test_spelled_out_defaults_and_key_order_keep_the_id(keys, rnd):
    explicit = {**BASE, **{k: DEFAULTS[k] for k in keys}}
    items = list(explicit.items())
    rnd.shuffle(items)
    assert RunConfig.from_dict(dict(items)).run_id == RunConfig(**BASE).run_id


def test_equivalent_spellings_keep_the_id():
    ids = {RunConfig(**{**BASE, "arch": {"widths": (100,)}}, lr=0.001).run_id,
           RunConfig(**BASE, lr=1e-3).run_id, RunConfig("mnist", "vit", {"dim": 32}).run_id}
    assert len(ids) == 2
    assert RunConfig("mnist", "vit", {}).run_id == RunConfig("mnist", "vit", {"dim": 32, "patch": 7}).run_id


CHANGES = [("dataset", "fashion_mnist"), ("seed", 1), ("epochs", 11), ("batch_size", 64), ("optimizer", "sgd"),
           ("lr", 2e-3), ("weight_decay", 1e-4), ("loss", "mse"), ("train_per_class", 100), ("val_per_class", 100),
           ("subset_seed", 1), ("arch", {"widths": [100, 100]}), ("arch", {"widths": [101]})]


@given(st.sampled_from(CHANGES))
def test_any_semantic_change_changes_the_id(change):
    key, value = change
    assert RunConfig(**{**BASE, key: value}).run_id != RunConfig(**BASE).run_id


@pytest.mark.subprocess
def test_id_is_stable_across_processes_and_hash_seeds():
    code = "from minarch_core.engine.config import RunConfig; print(RunConfig('cifar10','cnn',{'channels':4},seed=3).run_id)"
    ids = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": s},
                          capture_output=True, text=True, check=True).stdout.strip() for s in ("1", "4242")}
    assert ids == {RunConfig("cifar10", "cnn", {"channels": 4}, seed=3).run_id}


@pytest.mark.parametrize("changes, message", [
    ({"epochs": "10"}, "epochs must be an integer >= 0, got '10'"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": "fast"}, "lr must be a finite number"),
    ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"semantics": 99}, "training semantics 99"),
])
def test_bad_settings_name_the_problem(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{**BASE, **changes})


def test_from_dict_rejects_unknown_settings():
    with pytest.raises(ConfigError, match=r"unknown run setting\(s\) \['learning_rate'\]"):
        RunConfig.from_dict({**BASE, "learning_rate": 0.1})
