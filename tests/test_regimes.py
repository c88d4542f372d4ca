import numpy as np
import pandas as pd
import pytest

from minarch_core.analyses import regimes
from minarch_core.analyses.regimes import Thresholds, classify


def runs(config_id, n_params, test, train=None, val_loss=None, status=None, family="dnn"):
    """Synthetic table and history rows for one configuration: one final test accuracy per seed."""
    table, hist = [], []
    for seed, acc in enumerate(test):
        run_id = f"{config_id}-{seed}"
        curve = val_loss or [2.0, 1.0, 0.5, 0.4, 0.35]
        table.append(dict(run_id=run_id, config_id=config_id, dataset="mnist", family=family, seed=seed,
                          n_params=n_params, depth=1, width=n_params, shape="equal", model=f"DNN {n_params}",
                          test_acc=acc,
                          train_acc=(train or acc + 0.01), val_loss=curve[-1],
                          status=(status or ["ok"] * len(test))[seed]))
        hist += [dict(run_id=run_id, epoch=e, val_loss=v, test_acc=acc * e / (len(curve) - 1))
                 for e, v in enumerate(curve)]
    return table, hist


def frames(*configs):
    table = [row for t, _ in configs for row in t]
    hist = [row for _, h in configs for row in h]
    return regimes.run_features(pd.DataFrame(table), pd.DataFrame(hist))


def regime_of(*configs):
    return dict(zip(*regimes.configurations(frames(*configs))[["config_id", "regime"]].values.T))


def test_each_regime_is_recognised():
    found = regime_of(
        runs("fails", 100, [0.9, 0.9, 0.9, 0.9, 0.1]),  # one seed of five stuck at chance
        runs("spread", 200, [0.80, 0.85, 0.90]),  # learns, but how well depends on the seed
        runs("diverges", 300, [0.95, 0.95, 0.95], status=["ok", "ok", "diverged"]),
        runs("learns", 400, [0.950, 0.951, 0.952]),
        runs("upturn", 500, [0.97, 0.97, 0.97], val_loss=[2.0, 0.5, 0.1, 0.15, 0.2]),  # loss doubles after its min
        runs("gap", 600, [0.90, 0.90, 0.90], train=1.0),
        runs("weak", 700, [0.50, 0.505, 0.51]))  # reliably the same, far below its family's plateau (0.97)
    assert found == {"fails": "unstable", "spread": "unstable", "diverges": "unstable", "learns": "learning",
                     "upturn": "overfitting", "gap": "overfitting", "weak": "underfitting"}


@pytest.mark.parametrize("args, expected", [  # failed fraction, test std, below-level fraction, gap, upturn
    ((0.10, 0.0, 0.0, 0.0, 0.0), "learning"), ((0.11, 0.0, 0.0, 0.0, 0.0), "unstable"),  # failed fraction border
    ((0.0, 0.020, 0.0, 0.0, 0.0), "learning"), ((0.0, 0.021, 0.0, 0.0, 0.0), "unstable"),  # spread border
    ((0.0, 0.0, 0.10, 0.0, 0.0), "learning"), ((0.0, 0.0, 0.11, 0.0, 0.0), "underfitting"),  # level border
    ((0.0, 0.0, 0.0, 0.0, 0.10), "learning"), ((0.0, 0.0, 0.0, 0.0, 0.11), "overfitting"),  # upturn border
    ((0.0, 0.0, 0.0, 0.05, 0.0), "learning"), ((0.0, 0.0, 0.0, 0.051, 0.0), "overfitting"),  # gap border
    ((0.5, 0.0, 0.5, 0.2, 0.5), "unstable"),  # instability outranks the rest
    ((0.0, 0.0, 0.5, 0.2, 0.5), "underfitting"),  # not learning the task outranks overfitting
    ((0.0, np.nan, 0.0, 0.0, np.nan), "learning"),  # one seed: no spread to judge
])
def test_borders_between_regimes(args, expected):
    assert classify(*args) == expected


def test_thresholds_are_parameters():
    assert classify(0.0, 0.03, 0.0, 0.0, 0.0, Thresholds(max_std=0.05)) == "learning"
    assert regimes.thresholds_table().set_index("threshold").value["max_std"] == 0.02


def test_configuration_statistics():
    c = regimes.configurations(frames(runs("a", 100, [0.8, 0.9, 1.0], val_loss=[2.0, 1.0, 1.5]))).iloc[0]
    assert c.seeds == 3 and c.test_mean == pytest.approx(0.9) and c.test_std == pytest.approx(0.1)
    assert (c.test_min, c.test_q50, c.test_max) == pytest.approx((0.8, 0.9, 1.0))
    assert c.upturn == pytest.approx(0.5) and c.min_val_epoch == 1 and c.gap == pytest.approx(0.01)


def test_the_minimal_size_is_where_the_fitted_probability_of_learning_reaches_the_level():
    f = frames(runs("p100", 100, [0.1] * 4), runs("p200", 200, [0.1, 0.1, 0.1, 0.9]), runs("p400", 400, [0.9] * 4),
               runs("p800", 800, [0.95] * 4), runs("p1600", 1600, [0.97] * 4, val_loss=[2, 0.1, 0.3]))
    m = regimes.minimal_params(f).iloc[0]
    assert m.bound == "exact" and 200 < m.min_params < 800 and m.ci_low < m.min_params < m.ci_high
    assert (m.learned, m.seeds, m.level) == (13, 20, 0.9)
    none = regimes.minimal_params(frames(runs("a", 100, [0.1] * 3), runs("b", 200, [0.1] * 3))).iloc[0]
    assert np.isnan(none.min_params) and none.bound == "not reached"
    higher = regimes.minimal_params(regimes.mark(f, Thresholds(learn_probability=0.99)),
                                    Thresholds(learn_probability=0.99)).iloc[0]
    assert higher.min_params > m.min_params  # a stricter level reads the curve further up


def test_a_family_that_learns_everywhere_gives_a_bound_not_a_point():
    f = frames(*(runs(f"p{p}", p, [0.95] * 3) for p in (6780, 10000, 20000)))
    m = regimes.minimal_params(f).iloc[0]
    assert m.min_params == 6780 and m.bound == "at most" and m.smallest == 6780
    draws = regimes.minimal_draws(f, n_draws=100)
    assert len(draws) == 100 and (draws.min_params == 6780).all()


def test_a_family_of_one_size_is_read_against_the_level_not_fitted():
    often = regimes.minimal_params(frames(runs("p100", 100, [0.9] * 9 + [0.1]))).iloc[0]  # 9 of 10 learn: 0.9
    assert often.bound == "at most" and often.min_params == 100 and np.isnan(often.fitted)
    seldom = regimes.minimal_params(frames(runs("p100", 100, [0.9, 0.1, 0.1]))).iloc[0]
    assert seldom.bound == "not reached" and np.isnan(seldom.min_params)
    assert (regimes.minimal_draws(frames(runs("p100", 100, [0.9] * 9 + [0.1])), n_draws=5).min_params == 100).all()


def test_the_shaped_networks_do_not_enter_the_family_minimum():
    f = frames(runs("p100", 100, [0.1] * 4), runs("p400", 400, [0.95] * 4))
    shaped = frames(runs("s50", 50, [0.95] * 4))
    shaped["shape"] = "increasing"  # a bottleneck-free shape that learns smaller than any square network
    m = regimes.minimal_params(pd.concat([f, shaped], ignore_index=True)).iloc[0]
    assert m.bound == "exact" and m.smallest == 100


def test_sensitivity_moves_the_estimate_as_the_level_rises():
    f = frames(runs("p100", 100, [0.5] * 4), runs("p200", 200, [0.5, 0.5, 0.9, 0.9]), runs("p300", 300, [0.9] * 4),
               runs("p400", 400, [0.97] * 4))
    s = regimes.sensitivity(f, {"min_level": (0.4, 0.8, 0.95), "fail_margin": (0.1, 0.5)})
    level = s[s.threshold == "min_level"].set_index("value")
    assert level.bound[0.4] == "at most"  # at 40 % of the way, 0.5 has learned: every seed learns
    assert level.min_params[0.8] < np.nan_to_num(level.min_params[0.95], nan=np.inf)  # at 95 % 0.90 fails
    assert (s["default"] > 0).all() and {"ci_low", "ci_high"} <= set(s)


def test_fit_plateau_recovers_a_known_curve():
    x = np.linspace(2, 6, 15)
    configs = pd.DataFrame({"dataset": "mnist", "family": "dnn", "n_params": 10 ** x,
                            "test_mean": regimes.logistic(x, 0.1, 0.9, 3.0, 4.0)})
    fit = regimes.fit_plateau(configs).iloc[0]
    assert (fit.floor, fit.plateau, fit.slope, fit.log10_mid) == pytest.approx((0.1, 0.9, 3.0, 4.0), rel=1e-3)
    assert fit["params_0.5"] == pytest.approx(1e4, rel=1e-3)
    assert fit["params_0.99"] == pytest.approx(10 ** (4 + np.log(99) / 3), rel=1e-3)


def test_fit_plateau_declines_a_family_too_small_to_constrain_the_curve(recwarn):
    x = np.linspace(2, 5, 4)
    configs = pd.DataFrame({"dataset": "mnist", "family": "vit", "n_params": 10 ** x,
                            "test_mean": regimes.logistic(x, 0.1, 0.9, 3.0, 4.0)})
    fit = regimes.fit_plateau(configs).iloc[0]
    assert fit.configs == 4 and np.isnan(fit.plateau) and np.isnan(fit.rmse)
    assert not recwarn.list


def test_shape_spread_per_size_bin():
    configs = pd.DataFrame({"dataset": "mnist", "family": "dnn", "config_id": list("abc"), "n_params": [1000, 1100, 1e5],
                            "shape": ["increasing", "decreasing", "equal"], "depth": [2, 3, 1],
                            "test_mean": [0.9, 0.8, 0.97]})
    s = regimes.shape_spread(configs).set_index("bin")
    assert s.loc[3.0, "spread"] == pytest.approx(0.1) and s.loc[3.0, "shapes"] == 2
    assert s.loc[5.0, "configs"] == 1 and np.isnan(s.loc[5.0, "spread"])  # a lone configuration compares with nothing


def test_representatives_follow_the_rule():
    f = frames(runs("p100", 100, [0.1] * 3), *(runs(f"p{p}", p, [0.95] * 3) for p in (200, 300, 400, 500)))
    f.loc[f.config_id == "p300", "shape"] = "mixed"  # a Phase-1 shape: not a square network, never picked
    reps = regimes.representatives(regimes.configurations(f), f, per_group=3, seeds=2)
    assert reps.n_params.tolist() == [200, 200, 400, 400, 500, 500]  # smallest stable, middle rank, largest
    assert reps.run_id.tolist() == ["p200-0", "p200-1", "p400-0", "p400-1", "p500-0", "p500-1"]
    assert reps.size_rank.tolist() == [0, 0, 1, 1, 2, 2]


def test_examples_pick_the_median_configuration_of_each_regime():
    f = frames(runs("u", 100, [0.1] * 2), *(runs(f"l{p}", p, [0.95] * 2) for p in (200, 300, 400)))
    ex = regimes.examples(regimes.configurations(f), f)
    assert sorted(set(zip(ex.regime, ex.config_id))) == [("learning", "l300"), ("unstable", "u")]
    assert len(ex) == 4 and ex.label.str.startswith(("learning: DNN", "unstable: DNN")).all()


def test_the_minimal_sentences_follow_their_bound():
    spread = frames(runs("p100", 100, [0.1] * 4), runs("p200", 200, [0.1, 0.1, 0.9, 0.9]), runs("p400", 400, [0.95] * 4))
    text = regimes.minimal_in_words(regimes.minimal_params(spread))
    assert "parameters (95% interval" in text and "10 of its 12 seeds learned the task" not in text
    assert "6 of its 12 seeds learned the task" in text
    everywhere = frames(*(runs(f"p{p}", p, [0.95] * 3) for p in (100, 200)))
    assert "at most 100 parameters" in regimes.minimal_in_words(regimes.minimal_params(everywhere))
    never = frames(runs("a", 100, [0.1] * 3), runs("b", 200, [0.1] * 3))
    assert "not reached within the grid" in regimes.minimal_in_words(regimes.minimal_params(never))


def test_the_sensitivity_and_plateau_sentences_name_what_moved_and_why_no_curve():
    sensitivity = pd.DataFrame({"family": ["dnn"] * 4 + ["cnn"] * 2,
                                "threshold": ["min_level", "min_level", "fail_margin", "fail_margin", "min_level",
                                              "min_level"],
                                "min_params": [1000, 4000, 2000, np.nan, np.nan, np.nan]})
    text = regimes.sensitivity_in_words(sensitivity)
    assert "**DNN**: from 1,000 to 4,000 parameters over every range, moved most by `min_level` (4.0x)" in text
    assert "some values of `fail_margin` leave it outside the grid" in text and "**CNN**: never reached" in text
    steady = sensitivity.assign(min_params=1000.0)
    assert "whatever the thresholds" in regimes.sensitivity_in_words(steady)
    plateau = pd.DataFrame({"family": ["dnn", "cnn", "vit"], "configs": [3, 9, 9], "plateau": [np.nan, np.nan, 0.9]})
    notes = regimes.plateau_notes(plateau)
    assert "DNN has only 3 configurations" in notes and "The fit failed for CNN" in notes and "ViT" not in notes
