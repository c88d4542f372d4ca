"""Known answers for every verdict rule: synthetic tables built to agree, to differ and to be undecided."""
import warnings

import numpy as np
import pandas as pd
import pytest

from minarch_core.analyses import common, findings, frontier


@pytest.mark.parametrize("low, high, margin, expected", [
    (-0.05, 0.08, 0.1, "no effect"),  # inside ± the smallest effect that matters: an answer, not undecided
    (-0.05, 0.15, 0.1, "undecided"), (0.02, 0.08, 0.1, "no effect"),  # significant but smaller than what matters
    (0.2, 0.3, 0.1, "agrees"), (-0.05, 0.08, None, "undecided")])
def test_an_interval_inside_the_margin_is_no_effect(low, high, margin, expected):
    assert findings.verdict(low, high, margin=margin) == expected


def test_an_interval_pinned_by_the_grid_is_never_no_effect():
    # the old estimator's "8,180 → 7,965: 0.97x (0.97x to 1x)": every draw on two grid points. The dose-response
    # draws are continuous, so two estimates between the same grid points give a wide interval, not a tight one
    minimal, draws = minimal_tables({"mnist": 5000, "fashion_mnist": 5000}, spread=0.3)
    row = findings.minimal_grows(minimal, draws)[0]
    assert row["verdict"] == "undecided" and row["low"] < 0.8 and row["high"] > 1.25
    tight, tight_draws = minimal_tables({"mnist": 5000, "fashion_mnist": 5000}, spread=0.02)
    assert findings.minimal_grows(tight, tight_draws)[0]["verdict"] == "no effect"


def test_holm_undecides_the_weakest_parts_of_a_claim_first():
    claims = pd.DataFrame({"claim": ["a"] * 3 + ["b"], "part": list("wxyz"), "text": [""] * 4,
                           "verdict": ["agrees", "agrees", "differs", "agrees"], "p": [0.0, 0.02, 0.04, 0.04]})
    out = findings.holm(claims)
    # a: 0.0 <= 0.05/3; 0.02 <= 0.05/2; 0.04 <= 0.05/1 -> all kept; b alone: 0.04 <= 0.05
    assert out.verdict.tolist() == ["agrees", "agrees", "differs", "agrees"]
    claims.loc[1, "p"] = 0.03  # 0.03 > 0.05/2: this part and every weaker one of its claim fail
    out = findings.holm(claims)
    assert out.verdict.tolist() == ["agrees", "undecided", "undecided", "agrees"]
    assert "Holm" in out.text[1] and out.text[3] == ""


@pytest.mark.parametrize("low, high, side, expected", [
    (0.1, 0.5, "above", "agrees"), (-0.5, -0.1, "above", "differs"), (-0.1, 0.2, "above", "undecided"),
    (-0.5, -0.1, "below", "agrees"), (0.1, 0.5, "below", "differs"), (np.nan, 0.3, "above", "undecided")])
def test_a_verdict_follows_the_whole_interval(low, high, side, expected):
    assert findings.verdict(low, high, paper_side=side) == expected


def configs_with(regime_params):
    return pd.DataFrame([{"dataset": "mnist", "family": "dnn", "config_id": f"c{i}", "regime": r, "n_params": p}
                         for i, (r, p) in enumerate(regime_params)])


def test_regimes_ordered_by_size():
    ordered = configs_with([("unstable", p) for p in (100, 200, 300)] + [("learning", p) for p in (1e4, 2e4, 3e4)]
                           + [("overfitting", p) for p in (1e6, 2e6, 3e6)])
    rows = findings.regimes_ordered(ordered, n_boot=300)
    assert [r["verdict"] for r in rows] == ["agrees", "agrees"]
    assert rows[0]["estimate"] == pytest.approx(np.sqrt(3e4 * 1e6) / 200)  # median of all that learn, vs 200
    reversed_ = configs_with([("unstable", p) for p in (1e6, 2e6, 3e6)] + [("learning", p) for p in (100, 200, 300)]
                             + [("overfitting", p) for p in (1e4, 2e4)])
    assert findings.regimes_ordered(reversed_, n_boot=300)[0]["verdict"] == "differs"
    mixed = configs_with([("unstable", p) for p in (100, 1e6)] + [("learning", p) for p in (200, 2e6)]
                         + [("overfitting", p) for p in (300, 3e6)])
    assert {r["verdict"] for r in findings.regimes_ordered(mixed, n_boot=300)} == {"undecided"}


def shape_runs(small_spread, large_spread, noise=0.0, seeds=5, seed=0):
    """DNN runs in two size bins (2,000 and 200,000 parameters), three shapes each, with the given spreads."""
    rng = np.random.default_rng(seed)
    rows = []
    for params, spread in ((2000, small_spread), (200_000, large_spread)):
        for k, offset in enumerate((0, spread / 2, spread)):
            for s in range(seeds):
                rows.append({"dataset": "mnist", "family": "dnn", "config_id": f"{params}-{k}", "n_params": params + k,
                             "shape": ("equal", "increasing", "decreasing")[k], "depth": 1 + k,
                             "seed": s, "test_acc": 0.9 - offset + rng.normal(0, noise)})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_shape_invariance_known_answers():
    agrees = findings.shape_invariance(shape_runs(0.2, 0.01, noise=0.002), n_boot=200)[0]
    assert agrees["verdict"] == "agrees" and agrees["estimate"] == pytest.approx(-0.19, abs=0.01)
    assert findings.shape_invariance(shape_runs(0.01, 0.2, noise=0.002), n_boot=200)[0]["verdict"] == "differs"
    assert findings.shape_invariance(shape_runs(0.05, 0.05, noise=0.05, seeds=3), n_boot=200)[0]["verdict"] == \
        "undecided"


def minimal_tables(points, bounds=None, spread=0.05, n=400, seed=0):
    rng = np.random.default_rng(seed)
    bounds = bounds or {}
    minimal = pd.DataFrame([{"dataset": d, "family": "dnn", "min_params": p, "bound": bounds.get(d, "exact"),
                             "largest": 1e6} for d, p in points.items()])
    draws = pd.concat([pd.DataFrame({"dataset": d, "family": "dnn", "draw": range(n),
                                     "min_params": p * np.exp(rng.normal(0, spread, n))}) for d, p in points.items()])
    return minimal, draws


def test_minimal_parameters_grow_with_difficulty_known_answers():
    rows = findings.minimal_grows(*minimal_tables({"mnist": 1000, "fashion_mnist": 3000, "cifar10": 9000}))
    assert [r["verdict"] for r in rows] == ["agrees", "agrees"] and rows[0]["estimate"] == pytest.approx(3)
    rows = findings.minimal_grows(*minimal_tables({"mnist": 5000, "fashion_mnist": 1000}))
    assert rows[0]["verdict"] == "differs"
    rows = findings.minimal_grows(*minimal_tables({"mnist": 1000, "fashion_mnist": 1050}, spread=0.3))
    assert rows[0]["verdict"] == "undecided"


@pytest.mark.parametrize("points, bounds, expected", [
    ({"mnist": 6780, "cifar10": 20000}, {"mnist": "at most"}, "agrees"),  # the bound lies below the harder estimate
    ({"mnist": 6780, "cifar10": 6780}, {"mnist": "at most", "cifar10": "at most"}, "out of range"),
    ({"mnist": 6780, "cifar10": 5000}, {"mnist": "at most"}, "out of range"),  # below the bound: order unknown
    ({"mnist": 6780, "cifar10": np.nan}, {"cifar10": "not reached"}, "agrees"),
    ({"mnist": np.nan, "cifar10": 5000}, {"mnist": "not reached"}, "differs"),
    ({"mnist": 9000, "cifar10": 6780}, {"cifar10": "at most"}, "differs"),
])
def test_a_bound_is_compared_as_a_bound(points, bounds, expected):
    row = findings.minimal_grows(*minimal_tables(points, bounds))[0]
    assert row["verdict"] == expected and np.isnan(row["estimate"]) and "bound" in row["text"]


def redundancy_table(values):
    """The first configuration is the family's largest: the one the claim looks at."""
    return pd.DataFrame([{"dataset": "mnist", "family": "dnn", "scope": "global", "config_id": f"c{c}",
                          "model": f"DNN {c}", "n_params": 1000 * (len(values) - c), "seed": s, "redundancy": v}
                         for c, seeds in enumerate(values) for s, v in enumerate(seeds)])


def test_redundancy_as_high_as_60_percent_known_answers():
    assert findings.redundancy_high(redundancy_table([[0.8, 0.8, 0.9], [0.3] * 3]))[0]["verdict"] == "agrees"
    assert findings.redundancy_high(redundancy_table([[0.4, 0.5, 0.4], [0.3] * 3]))[0]["verdict"] == "differs"
    assert findings.redundancy_high(redundancy_table([[0.4, 0.8, 0.6], [0.3] * 3]))[0]["verdict"] == "undecided"
    assert findings.redundancy_high(redundancy_table([[0.6, 0.6, 0.7], [0.3] * 3]))[0]["verdict"] == "agrees"
    assert findings.redundancy_high(redundancy_table([[0.3] * 3, [0.9] * 3]))[0]["verdict"] == "differs"  # not chosen


def test_thin_tables_give_undecided_parts_with_their_reason():
    one = findings.minimal_grows(*minimal_tables({"mnist": 1000}))
    assert [(r["verdict"], r["text"]) for r in one] == [("undecided", "needs at least two datasets")]
    assert findings.depth_resilience(pd.DataFrame(columns=["dataset", "band", "depth", "redundancy"]))[0][
        "verdict"] == "undecided"
    rows = findings.quantization_hurts(tolerance_table({"mnist": (0.6, -0.1)}), n_boot=50)
    assert rows[1]["verdict"] == "undecided" and "two datasets" in rows[1]["text"]


def test_a_threshold_never_reached_in_a_draw_counts_as_beyond_the_grid():
    minimal, draws = minimal_tables({"mnist": 1000, "fashion_mnist": 3000})
    draws.loc[(draws.dataset == "fashion_mnist") & (draws.draw < 100), "min_params"] = np.nan  # a quarter
    row = findings.minimal_grows(minimal, draws)[0]
    assert row["high"] == np.inf and row["verdict"] == "agrees" and "unbounded" in row["text"]
    draws.loc[(draws.dataset == "mnist") & (draws.draw < 100), "min_params"] = np.nan  # the easier one too:
    with warnings.catch_warnings():  # zero ratios beside infinite ones, and no warning in the book
        warnings.simplefilter("error")
        row = findings.minimal_grows(minimal, draws)[0]
    assert row["low"] == 0 and row["high"] == np.inf and row["verdict"] == "undecided"


def matched_table(effect, noise=0.0, bands=4, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"dataset": "mnist", "band": f"b{b}", "depth": d, "seed": s,
                          "redundancy": 0.5 + effect * (d - 1) / 3 + rng.normal(0, noise)}
                         for b in range(bands) for d in (1, 2, 4) for s in range(3)])


def test_depth_at_matched_size_known_answers():
    agree = findings.depth_resilience(matched_table(0.2, noise=0.01))[0]
    assert agree["verdict"] == "agrees" and agree["estimate"] == pytest.approx(0.2 / 3, abs=0.01)  # per depth step
    assert findings.depth_resilience(matched_table(-0.2, noise=0.01))[0]["verdict"] == "differs"
    assert findings.depth_resilience(matched_table(0.0, noise=0.4))[0]["verdict"] == "undecided"
    assert findings.depth_resilience(matched_table(0.0, noise=0.01))[0]["verdict"] == "no effect"


def tolerance_table(slope_by_dataset, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, (level, slope) in slope_by_dataset.items():
        for k, params in enumerate((1e3, 3e3, 1e4, 3e4, 1e5, 3e5)):
            rel = level + slope * np.log10(params) + rng.normal(0, noise)
            rows.append({"dataset": dataset, "config_id": f"{dataset}{k}", "granularity": "tensor",
                         "n_params": params, "float32_acc": 0.9, "drop_4bit": rel * 0.8})
    return pd.DataFrame(rows)


def test_quantization_known_answers():
    rows = findings.quantization_hurts(tolerance_table({"mnist": (0.6, -0.1), "cifar10": (0.8, -0.1)}), n_boot=300)
    assert [r["verdict"] for r in rows] == ["agrees", "agrees"]
    assert rows[1]["estimate"] == pytest.approx(0.2)  # relative to accuracy above chance, at matched size
    rows = findings.quantization_hurts(tolerance_table({"mnist": (0.8, -0.1), "cifar10": (0.1, 0.0)}), n_boot=300)
    assert rows[1]["verdict"] == "differs"
    rows = findings.quantization_hurts(tolerance_table({"mnist": (0.5, 0.0), "cifar10": (0.5, 0.0)}, noise=0.1),
                                       n_boot=300)
    assert rows[0]["verdict"] == "undecided" and rows[1]["verdict"] == "undecided"


def test_relative_drop_is_against_accuracy_above_chance():
    t = pd.DataFrame({"dataset": ["cifar10", "mnist"], "float32_acc": [0.4, 0.9], "drop_4bit": [0.03, 0.04]})
    assert findings.relative_drop(t).tolist() == pytest.approx([0.1, 0.05])


def test_an_interval_the_draws_pin_to_one_shown_value_is_said_in_words():
    assert common.between("80%", "80%") == "the same in 95% of the bootstrap draws"
    assert common.between("-17", "+2") == "95% interval -17 to +2"


def family_minimal(points, bounds=None, spread=0.05, n=400, seed=0):
    """Minimal tables of several families on MNIST (``points``: family -> minimal parameters)."""
    rng = np.random.default_rng(seed)
    bounds = bounds or {}
    minimal = pd.DataFrame([{"dataset": "mnist", "family": f, "min_params": p, "bound": bounds.get(f, "exact"),
                             "largest": 1e6} for f, p in points.items()])
    draws = pd.concat([pd.DataFrame({"dataset": "mnist", "family": f, "draw": range(n),
                                     "min_params": p * np.exp(rng.normal(0, spread, n))}) for f, p in points.items()])
    return minimal, draws


@pytest.mark.parametrize("hybrid, bounds, expected", [
    (2000, {}, "agrees"),  # fewer than the CNN, the parent needing fewer
    (20000, {}, "differs"),
    (6500, {}, "no effect"),  # within 1.25x of the CNN's 6,780, and the interval too
    (20000, {"convmlp": "at most", "cnn": "at most"}, "out of range"),  # two bounds from above cannot be ordered
    (3000, {"cnn": "at most"}, "out of range"),  # below the DNN's count, but the CNN's could be lower still
    (20000, {"cnn": "not reached", "dnn": "not reached"}, "agrees"),
])
def test_hybrids_are_compared_with_the_parent_needing_fewest_parameters(hybrid, bounds, expected):
    rows = findings.hybrids_learn_smaller(*family_minimal({"cnn": 6780, "dnn": 8000, "convmlp": hybrid}, bounds,
                                                          spread=0.02))
    assert [r["verdict"] for r in rows] == [expected] and rows[0]["dataset"] == "mnist"
    assert "Conv+MLP vs CNN and DNN" in rows[0]["part"]
    if not bounds:
        assert rows[0]["estimate"] == pytest.approx(6780 / hybrid) and "CNN (the parent needing fewer)" in rows[0]["text"]


def test_a_hybrid_without_both_parents_or_no_hybrid_is_undecided_with_its_reason():
    rows = findings.hybrids_learn_smaller(*family_minimal({"cnn": 6780, "convvit": 900}))
    assert rows[0]["verdict"] == "undecided" and "a parent family has no run" in rows[0]["text"]
    rows = findings.hybrids_learn_smaller(*family_minimal({"cnn": 6780, "vit": 900}))
    assert rows[0]["verdict"] == "undecided" and "no hybrid family" in rows[0]["text"]


def frontier_table(variants, seeds=4, spread=0.002, seed=0):
    """A frontier table: one row per seed of every (family, bytes, mean validation accuracy) variant."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"dataset": "mnist", "config_id": f"{family}{size}", "method": "post-training",
                          "sparsity": 0.0, "precision": "8", "family": family, "model": family, "size_bytes": size,
                          "dense_bytes": size, "bits": 8, "achieved": 0.0, "run_id": f"{family}{size}-{s}",
                          "val_acc": acc + rng.normal(0, spread), "test_acc": acc}
                         for family, size, acc in variants for s in range(seeds)])


def test_a_hybrid_that_owns_frontier_points_is_counted_with_its_interval():
    owns = frontier_table([("cnn", 1000, 0.80), ("cnn", 4000, 0.95), ("convmlp", 500, 0.85), ("convmlp", 3000, 0.90)])
    row = findings.hybrids_on_frontier(owns, n_boot=200)[0]
    assert row["estimate"] == pytest.approx(2 / 3) and row["verdict"] == "agrees"  # 500 and 3000 bytes: 2 of 3 points
    assert "2 of its 3 points" in row["text"] and "from 500 to 3,000 bytes" in row["text"]
    beaten = frontier_table([("cnn", 1000, 0.90), ("convmlp", 2000, 0.85)])
    row = findings.hybrids_on_frontier(beaten, n_boot=200)[0]
    assert row["estimate"] == 0 and row["verdict"] == "differs"
    tied = frontier_table([("cnn", 1000, 0.90), ("convmlp", 1000, 0.90)], spread=0.02)
    assert findings.hybrids_on_frontier(tied, n_boot=200)[0]["verdict"] == "undecided"  # the seeds decide who owns it
    assert findings.hybrids_on_frontier(beaten[beaten.family == "cnn"])[0]["verdict"] == "undecided"


def test_the_frontier_mask_is_the_pareto_rule():
    size = np.array([5, 1, 3, 3, 2, 8])
    acc = np.array([0.9, 0.5, 0.7, 0.8, 0.5, 0.85])
    assert frontier.front(size, acc).tolist() == [True, True, False, True, False, False]  # 2 bytes ties 1's 0.5


def test_the_minimal_sizes_are_set_beside_the_published_intrinsic_dimensions():
    from minarch_core.analyses import references
    m = pd.DataFrame({"dataset": ["mnist", "cifar10"], "family": "dnn", "min_params": [7500.0, 45000.0],
                      "bound": "exact"})
    text = references.intrinsic_in_words(m)
    assert "On MNIST the DNN's minimal size, 7,500 parameters, is 10.0x the intrinsic dimension of a fully " \
           "connected network (750)" in text
    assert "order MNIST and CIFAR-10 alike (6.0x against 12.0x)" in text
    flipped = references.intrinsic_in_words(m.assign(min_params=[45000.0, 7500.0]))
    assert "order MNIST and CIFAR-10 differently" in flipped
    assert set(references.intrinsic().dataset) == {"mnist", "cifar10"}  # Li et al. did not measure Fashion-MNIST


def one_dataset(regimes_reversed=False, shape_flipped=False, redundancy_low=False, shallower_keeps=False,
                larger_lose_more=False):
    """One dataset's tables where every part the chapters state agrees with the paper, each flippable alone."""
    unstable, overfitting = (1e6, 100) if regimes_reversed else (100, 1e6)
    configs = configs_with([("unstable", unstable * k) for k in (1, 2, 3)] + [("learning", p) for p in (1e4, 2e4)]
                           + [("overfitting", overfitting * k) for k in (1, 2, 3)])
    runs = shape_runs(*((0.01, 0.2) if shape_flipped else (0.2, 0.01)), noise=0.002)
    redundancy = redundancy_table([[0.4, 0.5, 0.4] if redundancy_low else [0.8, 0.8, 0.9], [0.3] * 3])
    matched = matched_table(-0.2 if shallower_keeps else 0.2, noise=0.01)
    tolerance = tolerance_table({"mnist": (0.1, 0.1) if larger_lose_more else (0.6, -0.1)})
    return configs, runs, redundancy, matched, tolerance


@pytest.mark.slow
@pytest.mark.parametrize("figure, flip, rule", [
    ("regimes", "regimes_reversed", lambda t: findings.regimes_ordered(t[0], n_boot=200)),
    ("sweep", "shape_flipped", lambda t: findings.shape_invariance(t[1], n_boot=200)),
    ("pruning", "redundancy_low", lambda t: findings.redundancy_high(t[2], n_boot=200)),
    ("pruning", "shallower_keeps", lambda t: findings.depth_resilience(t[3], n_boot=200)),
    ("quantization", "larger_lose_more", lambda t: findings.quantization_hurts(t[4], n_boot=200)[:1])])
def test_a_chapter_sentence_flips_with_its_table_and_says_what_the_findings_rule_says(figure, flip, rule):
    """What a dataset's chapter says of a claim part (``said`` over ``one_dataset``) is the verdict the findings'
    own rule gives on those tables: agrees on one table, differs when only that table flips."""
    for tables_, expected in ((one_dataset(), "agrees"), (one_dataset(**{flip: True}), "differs")):
        rows = rule(tables_)
        said = findings.said(findings.one_dataset(*tables_, n_boot=200), figure, "MNIST")
        assert rows and {row["verdict"] for row in rows} == {expected}
        for row in rows:  # the chapter's line for the part: the rule's estimate and verdict
            line = next(line for line in said.splitlines() if f"({row['part']}): {row['text']}" in line)
            assert f"**{expected}**" in line


def test_every_part_a_chapter_states_is_said_by_that_chapter():
    """The chapters call ``said`` with the figure names the parts carry, so no part goes unsaid."""
    from pathlib import Path
    parts = findings.one_dataset(*one_dataset(), n_boot=20)
    for figure in parts.figure.unique():
        notebook = (Path(__file__).resolve().parents[1] / "notebooks" / f"{figure}.py").read_text()
        assert f'findings.said(ch.ask("verdicts"), "{figure}", ch.title)' in notebook, figure
    assert findings.said(parts, "smallest", "MNIST") == ""
