"""Racing the frontier's variants on the validation split: the test's error control, its power, and the same Pareto
set and answers as measuring every variant on the whole split, on real models of every family."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import real_mnist

from minarch_core.analyses import frontier, racing
from minarch_core.analyses.common import run_columns
from minarch_core.engine import sweep
from minarch_core.engine.config import RunConfig
from minarch_core.engine.store import Store


def population(wins: int, losses: int, n: int = 5000) -> torch.Tensor:
    """Paired differences X = p_u - p_v of one seed each: +1 where only u is right, -1 where only v is."""
    x = torch.zeros(n)
    x[:wins], x[wins:wins + losses] = 1, -1
    return x


def first_stops(x: torch.Tensor, variants: int, orders: int) -> list[float]:
    """For each of ``orders`` random orders of the images, the stage at which the test first rejects "u is no more
    accurate than v" (inf: never before the whole split)."""
    g = torch.Generator().manual_seed(0)
    drawn = torch.stack([x[torch.randperm(len(x), generator=g)] for _ in range(orders)])
    threshold, out = -math.log(racing.level(variants)), torch.full((orders,), math.inf)
    best = racing.log_wealth(drawn, len(x)).cummax(1).values  # the largest wealth by each image
    for n in reversed(racing.stages(len(x))[:-1]):
        out[best[:, n - 1] >= threshold] = n
    return out.tolist()


@pytest.mark.parametrize("wins, losses", [(100, 100), (20, 20), (0, 0), (240, 250)])
def test_a_tie_or_a_worse_variant_stops_another_no_more_often_than_the_level_says(wins, losses):
    """A near-tie injected into the whole split (u exactly as accurate as v, or 10 images worse): at the level of a
    single pair (alpha itself), over 400 random orders, the share of wrong stops stays within alpha."""
    x = population(wins, losses)
    stops = sum(n < math.inf for n in first_stops(x, 2, 400))
    assert stops / 400 <= racing.ALPHA


@pytest.mark.parametrize("wins, losses, by", [(1250, 250, 400), (375, 125, 1600), (300, 0, 800)])
def test_a_clearly_better_no_larger_variant_stops_the_other_early(wins, losses, by):
    """20 points better with 30 % discordance, 5 points with 10 %, 6 points with no loss: stopped by ``by`` images
    at a frontier's level (800 variants), in every one of 20 orders."""
    x = population(wins, losses)
    assert max(first_stops(x, 800, 20)) <= by


def test_variants_of_equal_bytes_never_stop_each_other():
    p = torch.tensor([[1.0] * 300 + [0.0] * 100, [0.0] * 400, [1.0] * 300 + [0.0] * 100])
    stopped = racing.stopped(p, np.array([10, 10, 10]), 1000, variants=3)
    assert stopped.tolist() == [False, True, False]  # the beaten one stops; a tie proves nothing, and stays


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    """Real MNIST models of every family, 2 seeds each, raced and measured whole: (every variant, raced)."""
    store = Store(tmp_path_factory.mktemp("race-store"))
    archs = [("dnn", {"widths": [8]}), ("dnn", {"widths": [32]}), ("dnn", {"widths": [32, 32]}),
             ("cnn", {"channels": 2}), ("cnn", {"channels": 4}), ("vit", {"dim": 8, "depth": 1, "heads": 2})]
    configs = [RunConfig("mnist", f, a, seed=s, epochs=2, train_per_class=150, val_per_class=100)
               for f, a in archs for s in (0, 1)]
    sweep.run(configs, store, device="cpu", progress=False)
    runs = [store.get(c) for c in configs]
    every = pd.concat([frontier.variants(r, device="cpu").assign(**run_columns(r)) for r in runs], ignore_index=True)
    return every, frontier.race(runs, device="cpu", progress=False)


@real_mnist
def test_racing_gives_the_whole_splits_pareto_set_and_answers_and_measures_less(raced):
    every, raced_ = raced
    keys = ["run_id", "sparsity", "precision"]
    both = every.merge(raced_, on=keys, suffixes=("", "_raced"))
    assert len(both) == len(every) == len(raced_)
    done = both[both.finished]
    assert (done.val_acc == done.val_acc_raced).all()  # the same images, the same count of right answers
    assert np.allclose(done.val_loss, done.val_loss_raced, rtol=1e-5)
    assert (both.size_bytes == both.size_bytes_raced).all()
    assert (~raced_.finished).any() and raced_.val_images.sum() < 0.8 * len(raced_) * raced_.val_images.max()
    for by in (("dataset", "family"), ("dataset",)):
        exact = frontier.pareto(frontier.summarise(every), by=by)[frontier.KEYS]
        fast = frontier.pareto(frontier.summarise(raced_), by=by)[frontier.KEYS]
        pd.testing.assert_frame_equal(exact.reset_index(drop=True), fast.reset_index(drop=True))
    summary = frontier.summarise(every)
    for goal in frontier.targets(summary, "mnist"):
        for family in (None, "dnn", "cnn", "vit"):
            a, b = (frontier.recommend(t, goal, family=family) for t in (every, raced_))
            assert a.met == b.met and a.row[frontier.KEYS].equals(b.row[frontier.KEYS]), (goal, family)
    assert "x fewer" in frontier.racing_text(raced_)
