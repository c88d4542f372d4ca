"""The sequential design on a synthetic dose-response: a store whose runs learn the task with a known probability
of their size, so that where the design puts its runs, and what they buy, can be checked without training."""
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from minarch_core.analyses import design, regimes
from minarch_core.engine import models, sweep
from minarch_core.engine.errors import ConfigError
from minarch_core.engine.profiles import Design, Grid, Profile

TRUTH, SLOPE = 4.8, 6.0  # log10 parameters where a seed learns with probability 0.9; log-odds per decade
GRID = (1, 2, 4, 8, 16, 32)  # CNN channels: 6,780 to 216,650 parameters on MNIST


class Synthetic:
    """Duck-types the Store the design reads: ``train`` stores a run, whose test accuracy is 0.9 when it learned
    (with the dose-response's probability, drawn from its run id) and chance otherwise."""

    def __init__(self):
        self.rows = {}

    def path(self, cfg):
        return Path(__file__) if cfg.run_id in self.rows else Path("/nonexistent/run")

    def train(self, configs):
        for c in configs:
            n = sweep.footprint(c).params
            u = int(hashlib.sha256(c.run_id.encode()).hexdigest()[:8], 16) / 16 ** 8
            acc = 0.9 if u < expit(logit(0.9) + SLOPE * (np.log10(n) - TRUTH)) else 0.1
            self.rows[c.run_id] = {"run_id": c.run_id, "config_id": c.replace(seed=0).run_id, "dataset": c.dataset,
                                   "seed": c.seed, "status": "ok", "n_params": n, "test_acc": acc,
                                   "train_acc": acc, "time_s": 1.0, **models.describe(c.family, c.arch)}

    def table(self, configs):
        return pd.DataFrame([self.rows[c.run_id] for c in configs])

    def histories(self, configs):
        return pd.DataFrame([{"run_id": c.run_id, "epoch": e, "val_loss": 2.0 - e / 2, "test_acc": 0.5}
                             for c in configs for e in range(3)])


def study(values=GRID, **design_):
    return Profile("synthetic", seeds=5, epochs=1, train_per_class=10, val_per_class=10,
                   grids={"cnn": Grid("cnn", values)}, design=Design(**design_) if design_ is not None else None)


def interval(store, configs):
    m = regimes.minimal_params(regimes.run_features(store.table(configs), store.histories(configs))).iloc[0]
    return np.log10(m.ci_low), np.log10(m.ci_high)


@pytest.mark.slow
def test_the_design_brackets_the_truth_with_fewer_runs_than_a_denser_grid():
    s, store = study(budget=5.0, rounds=10), Synthetic()
    store.train(s.configs("mnist"))
    before = interval(store, s.configs("mnist"))
    trained, added = design.train(s, ["mnist"], store, store.train)
    ours = s.configs("mnist") + design.plan(s, "mnist", store).added
    low, high = interval(store, ours)
    assert trained == added > 0 and low <= TRUTH <= high
    assert high - low < (before[1] - before[0]) / 2  # the interval at least halved
    dense = study(values=tuple(range(1, 33)), budget=1.0)  # every channel count: the fixed grid's way to narrow it
    grid_store = Synthetic()
    grid_store.train(dense.configs("mnist"))
    d_low, d_high = interval(grid_store, dense.configs("mnist"))
    assert len(ours) < len(dense.configs("mnist")) and high - low <= (d_high - d_low) * 1.1


@pytest.mark.slow
def test_a_design_replayed_on_its_own_store_trains_nothing_and_an_interrupted_one_resumes():
    s, store = study(budget=1.0, rounds=2), Synthetic()
    store.train(s.configs("mnist"))
    first = design.plan(s, "mnist", store)
    store.train(first.missing[:7])  # interrupted after seven runs of the first round
    resumed = design.plan(s, "mnist", store)
    assert [c.run_id for c in resumed.missing] == [c.run_id for c in first.missing[7:]]
    design.train(s, ["mnist"], store, store.train)
    assert design.train(s, ["mnist"], store, lambda todo: pytest.fail(f"trained {len(todo)} runs again")) == \
        (0, len(design.plan(s, "mnist", store).added))


def test_the_budget_caps_the_design_and_a_family_out_of_range_gets_nothing():
    s, store = study(budget=0.4), Synthetic()  # every synthetic run took one second: 12 runs' worth
    store.train(s.configs("mnist"))
    plan = design.plan(s, "mnist", store)
    assert len(plan.added) == 10  # two proposals of five seeds fit, a third would not
    assert design.plan(study(budget=0.1), "mnist", store).added == []  # not even one proposal fits
    learns = study(values=(16, 32), budget=1.0)
    everywhere = Synthetic()
    everywhere.train(learns.configs("mnist"))  # 16 and 32 channels: every seed learns
    assert design.plan(learns, "mnist", everywhere).added == []


@pytest.mark.parametrize("field, value, words", [("budget", 0, "'budget' must be a number in 0.001..10"),
                                                 ("rounds", 0, "'rounds' must be an integer in 1..20"),
                                                 ("target", 1.0, "'target' must be a number in 1.01..1,000"),
                                                 ("low", 0.95, "low (0.95) must be below high (0.9)")])
def test_a_bad_design_is_refused_before_any_training_naming_the_field_and_its_range(field, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Design(**{field: value})
