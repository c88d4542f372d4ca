"""The paper's claims as rules over the saved tables: each claim part an estimate, a bootstrap interval and a verdict.

A verdict means what it says: ``agrees`` when the whole interval lies on the paper's side of the null, ``differs``
when it lies wholly on the other side, ``no effect`` when it lies inside the smallest effect that matters
(``MARGINS``, stated before looking: an effect smaller than that answers the claim as "no"), ``out of range`` when
a family's minimal size is a bound below its smallest member so the comparison lies outside what the family can
show, ``undecided`` otherwise (the data cannot tell). Intervals resample seeds within configurations and, where
models are compared, the models (configurations or size bands) themselves; minimal sizes are drawn from their
confidence distributions (``dose``). Each part's verdict is corrected for the claim's other parts by Holm's step-down
rule (``holm``: a family-wise level of 5 % per claim), and its stability over the regime thresholds' ranges is
reported (``stability``).

Each rule takes tidy analysis tables (``tables``, stacked over datasets with a ``dataset`` column) and returns
one row per claim part: ``claim``, ``part``, ``paper`` (what the paper says), ``estimate``, ``low``, ``high``,
``text`` (the estimate in words), ``verdict`` and ``figure`` (the chapter that shows it).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy.stats import ConstantInputWarning, spearmanr

from ..engine import data, models
from . import frontier
from . import regimes
from .common import between, chance, square
from .pruning import REDUNDANT, slope
from .regimes import LEARNS, THRESHOLDS, shape_spread

VERDICTS = ("agrees", "differs", "no effect", "out of range", "undecided")
DECIDED = ("agrees", "differs", "no effect")
LEVEL = 0.95  # of every interval, and the family-wise level of each claim's verdicts
SMALL = 1e4  # parameters: the border between small and large networks in the shape claim
# the smallest effect that matters, per claim part, stated before looking: (value on the scale its rule compares,
# words); ``margins`` shows them
MARGINS = {"regimes": (np.log10(1.25), "1.25x the parameters"), "shape": (0.02, "2 points of spread"),
           "minimal": (np.log(1.25), "1.25x the parameters"), "depth": (0.05, "5 points of redundancy per depth step"),
           "rank": (0.1, "a rank correlation of 0.1"), "contrast": (0.01, "1 point of learned accuracy"),
           "hybrids": (np.log(1.25), "1.25x the parameters")}
MARGIN_PARTS = {"regimes": "the regimes' order by size", "shape": "shape matters less for larger networks",
                "minimal": "the minimal size grows with difficulty", "depth": "depth and pruning resilience",
                "rank": "smaller models lose more to quantization", "contrast": "harder datasets lose more to quantization",
                "hybrids": "hybrids need fewer parameters than their parents"}


def margins() -> pd.DataFrame:
    """The smallest effect that matters of each claim part that can read *no effect*, for the method chapter."""
    return pd.DataFrame([{"part": MARGIN_PARTS[k], "margin": words} for k, (_, words) in MARGINS.items()])


def verdict(low: float, high: float, null: float = 0.0, paper_side: str = "above", margin: float | None = None) -> str:
    """``no effect`` if the interval lies inside ``null`` ± ``margin``; else ``agrees`` if it lies wholly on the
    paper's side of ``null``, ``differs`` if wholly on the other, else ``undecided`` (an interval may be open-ended:
    a draw beyond the grid counts as infinite)."""
    if np.isnan(low) or np.isnan(high):
        return "undecided"
    if margin is not None and null - margin < low and high < null + margin:
        return "no effect"
    above, below = low > null, high < null
    if paper_side == "below":
        above, below = below, above
    return "agrees" if above else "differs" if below else "undecided"


def decide(draws, null: float = 0.0, paper_side: str = "above", margin: float | None = None):
    """(low, high, verdict, p) of bootstrap or confidence draws: the ``LEVEL`` interval, its ``verdict``, and the
    p-value of that verdict for Holm's correction (two-sided against ``null`` for agrees or differs; against the
    nearer edge of ± ``margin``, doubled, for no effect; NaN when undecided)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    low, high = interval(draws)
    v = verdict(low, high, null, paper_side, margin)
    if v == "no effect":
        p = 2 * max(np.mean(draws <= null - margin), np.mean(draws >= null + margin))
    elif v in DECIDED:
        p = 2 * min(np.mean(draws <= null), np.mean(draws >= null))
    else:
        p = np.nan
    return low, high, v, min(p, 1.0)


def interval(draws) -> tuple[float, float]:
    """The central ``LEVEL`` interval of bootstrap draws (infinite draws kept: they are beyond the grid)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return np.nan, np.nan
    return tuple(np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], method="inverted_cdf"))  # no inf - inf


def times(x: float) -> str:
    """A ratio in words: '3.2x', '190x', '1,200x', 'unbounded'."""
    return "unbounded" if np.isinf(x) else f"{x:.2g}x" if x < 10 else f"{x:,.0f}x"


def undecided(claim: str, part: str, paper: str, why: str, figure: str) -> dict:
    """A claim part the tables cannot decide at all, with the reason."""
    return _row(claim, part, paper, np.nan, np.nan, np.nan, why, "undecided", figure)


def _row(claim, part, paper, estimate, low, high, text, verdict_, figure, dataset=None, p=np.nan, margin=""):
    return {"claim": claim, "part": part, "paper": paper, "estimate": estimate, "low": low, "high": high,
            "text": text, "verdict": verdict_, "figure": figure, "dataset": dataset, "p": p, "margin": margin}


def holm(claims: pd.DataFrame, alpha: float = 1 - LEVEL) -> pd.DataFrame:
    """Holm's step-down correction within each claim: its decided parts, by p-value, keep their verdict while
    p <= alpha / (parts - rank); from the first that fails on, a part reads ``undecided`` and says why. Every part of
    the claim counts, undecided ones included, so the level is family-wise per claim."""
    out = claims.copy()
    for _, g in out.groupby("claim", sort=False):
        decided = g[g.verdict.isin(DECIDED)].sort_values("p", kind="stable")
        for rank, (index, p) in enumerate(decided.p.fillna(0).items()):
            if p > alpha / (len(g) - rank):
                failed = decided.index[rank:]
                out.loc[failed, "text"] += (f" (decided alone, not after Holm's correction over the claim's "
                                            f"{len(g)} parts)")
                out.loc[failed, "verdict"] = "undecided"
                break
    return out


def _resample_seeds(runs: pd.DataFrame, value: str, keys, n_boot: int, rng) -> np.ndarray:
    """(n_boot, groups): the mean of ``value`` per group of ``keys``, each group's runs resampled with
    replacement in every draw."""
    groups = [g[value].to_numpy(float) for _, g in runs.groupby(keys, sort=True)]
    return np.stack([g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(1) for g in groups], axis=1)


# -- regimes ---------------------------------------------------------------------------------------------------------

def regimes_ordered(configs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Unstable configurations are smaller than those that learn the task, and those that overfit larger than
    those that learn without overfitting: per dataset and family where both regimes occur, the difference of median
    log10 parameters; their mean over those strata, configurations resampled within each."""
    rng = np.random.default_rng(seed)
    claim, rows = "Three regimes ordered by parameter count", []
    for part, (small, large) in {"unstable networks are smaller than those that learn": (("unstable",), LEARNS),
                                 "overfitting networks are larger than those that learn without overfitting":
                                 (("learning",), ("overfitting",))}.items():
        strata = []
        for _, g in configs.groupby(["dataset", "family"], sort=True):
            x = np.log10(g.n_params.to_numpy(float))
            a, b = x[g.regime.isin(small).to_numpy()], x[g.regime.isin(large).to_numpy()]
            if len(a) and len(b):
                strata.append((a, b))
        if not strata:
            rows.append(undecided(claim, part, PAPER["regimes"], "the two regimes never occur in one family",
                                  "regimes"))
            continue
        point = np.mean([np.median(b) - np.median(a) for a, b in strata])
        draws = [np.mean([np.median(rng.choice(b, len(b))) - np.median(rng.choice(a, len(a))) for a, b in strata])
                 for _ in range(n_boot)]
        margin, words = MARGINS["regimes"]
        low, high, v, p = decide(draws, margin=margin)
        rows.append(_row(claim, part, PAPER["regimes"], 10 ** point, 10 ** low, 10 ** high,
                         f"{times(10 ** point)} the parameters (median, over {len(strata)} family and dataset "
                         f"pairs; {between(times(10 ** low), times(10 ** high))})", v, "regimes", p=p, margin=words))
    return rows


def shape_invariance(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Shape barely matters for larger networks: the median accuracy spread across DNN shapes and depths of similar
    size (``regimes.shape_spread``'s bins, as the sweep chapter shows them) from ``SMALL`` parameters on, minus the
    same below; seeds resampled per configuration."""
    rng = np.random.default_rng(seed)
    d = runs[runs.family.isin(models.shaped())]
    claim, part = ("Shape barely matters for larger networks; the parameter count dominates",
                   "shape matters less from 10,000 parameters on")
    if d.empty:
        return [undecided(claim, part, PAPER["shape"], "no runs of a shaped family", "sweep")]
    keys = ["dataset", "config_id"]
    info = d.groupby(keys, sort=True)[["family", "n_params", "shape", "depth"]].first().reset_index()
    means = _resample_seeds(d, "test_acc", keys, n_boot, rng)  # (B, configs)
    point = d.groupby(keys, sort=True).test_acc.mean().to_numpy()

    def difference(acc):
        spread = shape_spread(info.assign(test_mean=acc)).dropna(subset=["spread"])
        large, small = spread[spread.params_min >= SMALL].spread, spread[spread.params_max < SMALL].spread
        return large.median() - small.median() if len(large) and len(small) else np.nan

    estimate = difference(point)
    if np.isnan(estimate):
        return [undecided(claim, part, PAPER["shape"], "the grid has no two shapes of similar size on both sides "
                          "of 10,000 parameters", "sweep")]
    margin, words = MARGINS["shape"]
    low, high, v, p = decide([difference(m) for m in means], paper_side="below", margin=margin)
    return [_row(claim, part, PAPER["shape"], estimate, low, high,
                 f"{estimate * 100:+.1f} points of median spread across shapes at matched size, large minus small "
                 f"({between(f'{low * 100:+.1f}', f'{high * 100:+.1f}')})", v, "sweep", p=p, margin=words)]


# -- minimal parameters ----------------------------------------------------------------------------------------------

def minimal_grows(minimal: pd.DataFrame, draws: pd.DataFrame, configs: pd.DataFrame | None = None,
                  seed: int = 0) -> list[dict]:
    """The minimal number of learnable parameters grows with task difficulty: per family and per pair of datasets
    of consecutive difficulty, the ratio harder / easier, its interval from the two estimates' draws; a bound is
    compared as a bound. With ``configs``, beside it the same growth in the family's own knob (``knob_at``: hidden
    width, channels, embedding width), which the input size does not inflate (a first layer on 3,072 inputs has
    3.9x the parameters of one on 784 at the same width)."""
    rng = np.random.default_rng(seed)
    rows = []
    names = data.by_difficulty(minimal.dataset.unique())
    if len(names) < 2:
        return [undecided("A minimal number of learnable parameters, growing with task difficulty",
                          "growth with difficulty", PAPER["minimal"], "needs at least two datasets", "regimes")]
    for family, m in minimal.groupby("family", sort=True):
        m = m.set_index("dataset")
        for easy, hard in zip(names, names[1:]):
            if easy not in m.index or hard not in m.index:
                continue
            e, h = m.loc[easy], m.loc[hard]
            de, dh = _draws(draws, easy, family), _draws(draws, hard, family)
            part = f"{models.family(family).title}: {data.spec(easy).title} → {data.spec(hard).title}"
            row = _fewer(e, h, de, dh, rng, "A minimal number of learnable parameters, growing with task difficulty",
                         part, PAPER["minimal"], MARGINS["minimal"])
            if configs is not None and e.bound == h.bound == "exact":
                ke, kh = knob_at(configs, easy, family), knob_at(configs, hard, family)
                n = min(len(de), len(dh))
                with np.errstate(invalid="ignore", divide="ignore"):
                    low, high = interval(np.log(kh(rng.permutation(dh)[:n]) / ke(rng.permutation(de)[:n])))
                a, b = ke(e.min_params), kh(h.min_params)
                row["text"] += (f"; in {KNOB_WORDS[models.family(family).knob]}: {a:,.1f} → {b:,.1f}, "
                                f"{times(b / a)} ({between(times(np.exp(low)), times(np.exp(high)))})")
                row.update(control=b / a, control_low=np.exp(low), control_high=np.exp(high))
            rows.append({**row, "dataset": hard})
    return rows


KNOB_WORDS = {"widths": "hidden width (of a one-layer network of that size)", "channels": "channels",
              "dim": "embedding width"}


def knob_at(configs: pd.DataFrame, dataset: str, family: str):
    """The family's knob (``width``: hidden units, channels or embedding width) of a configuration of a given
    parameter count on ``dataset``, interpolated log-log between its shallowest square configurations (extended
    along the end segments): a count in the family's own units, free of the input size."""
    c = square(configs[(configs.dataset == dataset) & (configs.family == family)])
    c = c[c.depth == c.depth.min()].sort_values("n_params")
    x, y = np.log(c.n_params.to_numpy(float)), np.log(c.width.to_numpy(float))

    def convert(params):
        with np.errstate(divide="ignore"):
            t = np.log(np.asarray(params, dtype=float))
        if len(x) < 2:
            return np.exp(y[0] + (t - x[0]))
        slope_lo, slope_hi = (y[1] - y[0]) / (x[1] - x[0]), (y[-1] - y[-2]) / (x[-1] - x[-2])
        inside = np.interp(t, x, y)
        return np.exp(np.where(t < x[0], y[0] + slope_lo * (t - x[0]),
                               np.where(t > x[-1], y[-1] + slope_hi * (t - x[-1]), inside)))
    return convert


def _draws(draws: pd.DataFrame, dataset: str, family: str) -> np.ndarray:
    """The draws of one minimal count; a draw that never learns is beyond the grid (infinite)."""
    values = draws[(draws.dataset == dataset) & (draws.family == family)].min_params.to_numpy(float)
    return np.where(np.isnan(values), np.inf, values)  # not nan_to_num: it would make inf the largest float


def _fewer(e, h, de, dh, rng, claim, part, paper, margin=(None, ""), figure="regimes") -> dict:
    """Does minimal row ``e`` need fewer parameters than row ``h``: the ratio h / e, its interval from the two
    estimates' draws ``de`` and ``dh`` (paired at random; ``margin``: the smallest log ratio that matters, and its
    words); where either is a bound, only an ordering the bounds imply is a verdict, and a bound below a family's
    smallest member that leaves the order open is ``out of range`` (the family cannot show it), not undecided."""
    say = lambda r: ("not reached within the grid (more than {:,.0f})".format(r.largest) if r.bound == "not reached"  # noqa: E731
                     else f"at most {r.min_params:,.0f}" if r.bound == "at most" else f"{r.min_params:,.0f}")
    text = f"{say(e)} → {say(h)}"
    if e.bound == "exact" and h.bound == "exact":
        n = min(len(de), len(dh))
        with np.errstate(invalid="ignore", divide="ignore"):  # a draw beyond the grid: an infinite or zero ratio
            ratios = np.log(rng.permutation(dh)[:n] / rng.permutation(de)[:n]) if n else np.array([])
        low, high, v, p = decide(ratios, margin=margin[0])
        ratio = h.min_params / e.min_params
        return _row(claim, part, paper, ratio, np.exp(low), np.exp(high),
                    f"{text}: {times(ratio)} ({between(times(np.exp(low)), times(np.exp(high)))})", v, figure,
                    p=p, margin=margin[1])
    p = 0.0  # an ordering the bounds imply holds in every draw
    if e.bound == "not reached" and h.bound == "not reached":
        v, p = "undecided", np.nan
    elif h.bound == "not reached":
        v = "agrees"  # h needs more than the grid holds; e less
    elif e.bound == "not reached":
        v = "differs"
    elif e.bound == "at most" and h.bound == "exact":
        v, p = ("agrees", 0.0) if h.min_params > e.min_params else ("out of range", np.nan)
    elif h.bound == "at most" and e.bound == "exact":
        v, p = ("differs", 0.0) if e.min_params > h.min_params else ("out of range", np.nan)
    else:
        v, p = "out of range", np.nan  # both at most: each family's smallest member already learns
    why = {"out of range": ": a family whose smallest member already learns cannot show how much smaller it could "
                           "be, so the order lies outside its range"}.get(v, "")
    return _row(claim, part, paper, np.nan, np.nan, np.nan, text + " (a bound: compared as a bound)" + why, v, figure,
                p=p, margin=margin[1])


# -- pruning ---------------------------------------------------------------------------------------------------------

def redundancy_high(redundancy: pd.DataFrame, threshold: float = REDUNDANT, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Parameter redundancy as high as 60 %: the largest mean redundancy (global pruning, seeds resampled) among
    the models chosen before looking (the largest representative of each family on each dataset, so that the
    maximum is not taken over every noisy curve); reaching the threshold exactly counts."""
    rng = np.random.default_rng(seed)
    claim, part = "More than 60 % of parameters prunable with little loss", "the most redundant model reaches 60 %"
    g = redundancy[redundancy.scope == "global"].dropna(subset=["redundancy"])
    if g.empty:
        return [undecided(claim, part, PAPER["redundancy"], "no pruning curves", "pruning")]
    largest = g.sort_values("n_params").groupby(["dataset", "family"]).config_id.last()
    g = g[g.config_id.isin(largest)]
    keys = ["dataset", "config_id"]
    point = g.groupby(keys, sort=True).redundancy.mean()
    low, high, v, p = decide(_resample_seeds(g, "redundancy", keys, n_boot, rng).max(axis=1), null=threshold - 1e-9)
    dataset, best = point.idxmax()[0], g[g.config_id == point.idxmax()[1]].model.iloc[0]
    return [_row(claim, part, PAPER["redundancy"], point.max(), low, high,
                 f"{point.max():.0%} ({best}, {data.spec(dataset).title}; {between(f'{low:.0%}', f'{high:.0%}')})",
                 v, "pruning", dataset, p=p)]


def depth_resilience(matched: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Deeper networks are more resilient to pruning, at matched parameter count: per dataset, the mean over size
    bands of each band's slope of redundancy against depth (``pruning.depth_slopes``, per hidden layer); bands, and
    seeds within each band and depth, resampled."""
    rng = np.random.default_rng(seed)
    rows = []
    if matched.empty:
        return [undecided("Deeper networks are more resilient to pruning", "depth at matched size", PAPER["depth"],
                          "no size band holds two depths that learn the task", "pruning")]
    for dataset, m in matched.groupby("dataset", sort=False):
        m = m.dropna(subset=["redundancy"])
        bands = [b for b, g in m.groupby("band", sort=True) if g.depth.nunique() > 1]
        if not bands:
            continue
        cells = {b: {d: c.redundancy.to_numpy(float) for d, c in m[m.band == b].groupby("depth")} for b in bands}
        point = np.mean([slope(list(c), [v.mean() for v in c.values()]) for c in cells.values()])
        draws = []
        for _ in range(n_boot):
            chosen = rng.choice(len(bands), len(bands))
            draws.append(np.mean([slope(list(cells[bands[i]]), [rng.choice(v, len(v)).mean()
                                                                 for v in cells[bands[i]].values()])
                                  for i in chosen]))
        margin, words = MARGINS["depth"]
        low, high, v, p = decide(draws, margin=margin)
        depths = sorted(m[m.band.isin(bands)].depth.unique())
        rows.append(_row("Deeper networks are more resilient to pruning",
                         f"{data.spec(dataset).title}: depth slope at matched size (depths "
                         f"{', '.join(map(str, depths))})", PAPER["depth"], point, low, high,
                         f"{point * 100:+.1f} points of redundancy per hidden layer, over {len(bands)} size bands "
                         f"({between(f'{low * 100:+.1f}', f'{high * 100:+.1f}')})", v, "pruning", dataset, p=p,
                         margin=words))
    return rows


# -- quantization ----------------------------------------------------------------------------------------------------

def relative_drop(tolerance: pd.DataFrame, bits: int = 4) -> pd.Series:
    """The accuracy lost at ``bits`` as a fraction of what the model had learned above chance."""
    return tolerance[f"drop_{bits}bit"] / (tolerance.float32_acc - chance(tolerance))


def quantization_hurts(tolerance: pd.DataFrame, bits: int = 4, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Quantization hurts smaller models, and harder datasets, more: (a) the rank correlation of size and the
    relative drop at ``bits`` bits; (b) the relative drop of the hardest minus the easiest dataset at matched size
    (a line of relative drop against log10 parameters per dataset, read at their common median size). Models
    resampled."""
    rng = np.random.default_rng(seed)
    t = tolerance[(tolerance.granularity == "tensor") & (tolerance.get("scheme", "symmetric") == "symmetric")]
    t = t.assign(rel=lambda f: relative_drop(f, bits))
    t = t.dropna(subset=["rel"])
    per_model = t.groupby(["dataset", "config_id"], sort=True).agg(rel=("rel", "mean"), n_params=("n_params", "first"))
    per_model = per_model.reset_index()
    x, y = np.log10(per_model.n_params.to_numpy(float)), per_model.rel.to_numpy(float)
    with warnings.catch_warnings():  # a constant draw (every drop the same) has no rank correlation: NaN, dropped
        warnings.simplefilter("ignore", ConstantInputWarning)
        rho = spearmanr(x, y).statistic
        draws = []
        for _ in range(n_boot):
            i = rng.integers(0, len(x), len(x))
            draws.append(spearmanr(x[i], y[i]).statistic if len(np.unique(x[i])) > 1 else np.nan)
    margin, words = MARGINS["rank"]
    low, high, v, p = decide(draws, paper_side="below", margin=margin)
    claim = "Quantization hurts smaller models, and harder datasets, more"
    rows = [_row(claim, f"smaller models lose more at {bits} bits", PAPER["quantization"], rho, low, high,
                 f"rank correlation of size and relative {bits}-bit loss {rho:+.2f} "
                 f"({between(f'{low:+.2f}', f'{high:+.2f}')})", v, "quantization", p=p, margin=words)]
    names = data.by_difficulty(per_model.dataset.unique())
    both = f"harder datasets lose more at {bits} bits at matched size"
    if len(names) < 2:
        rows.append(undecided(claim, both, PAPER["quantization"], "needs at least two datasets", "quantization"))
    else:
        easy, hard = names[0], names[-1]
        sizes = [np.log10(per_model[per_model.dataset == n].n_params.to_numpy(float)) for n in (easy, hard)]
        lo_x, hi_x = max(s.min() for s in sizes), min(s.max() for s in sizes)
        at = (lo_x + hi_x) / 2  # the middle of the sizes both datasets' models cover: no extrapolation

        def gap(frame):
            value = {}
            for name in (easy, hard):
                f = frame[frame.dataset == name]
                if f.n_params.nunique() < 2:
                    return np.nan
                slope, intercept = np.polyfit(np.log10(f.n_params), f.rel, 1)
                value[name] = slope * at + intercept
            return value[hard] - value[easy]

        part = f"{data.spec(hard).title} loses more than {data.spec(easy).title} at matched size"
        point = gap(per_model) if lo_x <= hi_x else np.nan
        if np.isnan(point):
            rows.append(undecided(claim, part, PAPER["quantization"], "their models share no range of sizes (or too "
                                  "few sizes to draw a line)", "quantization"))
            return rows
        members = [np.flatnonzero(per_model.dataset == name) for name in (easy, hard)]
        margin, words = MARGINS["contrast"]
        low, high, v, p = decide([gap(per_model.iloc[np.concatenate([rng.choice(m, len(m)) for m in members])])
                                  for _ in range(n_boot)], margin=margin)
        rows.append(_row(claim, part, PAPER["quantization"], point, low, high,
                         f"{point * 100:+.1f} points more of its learned accuracy lost at {bits} bits, at "
                         f"{10 ** at:,.0f} parameters ({between(f'{low * 100:+.1f}', f'{high * 100:+.1f}')})",
                         v, "quantization", hard, p=p, margin=words))
    return rows


# -- hybrids (the paper's future work) --------------------------------------------------------------------------------

def hybrids_learn_smaller(minimal: pd.DataFrame, draws: pd.DataFrame, seed: int = 0) -> list[dict]:
    """Hybrids learn with fewer parameters than both parents: per dataset and hybrid (``models.hybrids``), its
    minimal count against each parent's (the ratio parent / hybrid: above 1, the hybrid needs fewer; a bound compared
    as a bound). The claim holds when it holds against both (the row shown: the parent needing fewer), fails when it
    fails against either (the row shown: that parent), and is out of range when a parent bounded below its smallest
    member leaves it open."""
    rng = np.random.default_rng(seed)
    claim, rows = "Hybrids learn with fewer parameters than both parents", []
    need = lambda r: np.inf if r.bound == "not reached" else r.min_params  # noqa: E731
    for dataset, m in minimal.groupby("dataset", sort=False):
        m = m.set_index("family")
        for name in (f for f in models.hybrids() if f in m.index):
            fam = models.family(name)
            parents = [p for p in fam.parents if p in m.index]
            part = f"{data.spec(dataset).title}: {fam.title} vs " + " and ".join(
                models.family(p).title for p in fam.parents)
            if len(parents) < len(fam.parents):
                rows.append({**undecided(claim, part, PAPER["hybrids"], "a parent family has no run on this dataset",
                                         "regimes"), "dataset": dataset})
                continue
            each = {p: _fewer(m.loc[name], m.loc[p], _draws(draws, dataset, name), _draws(draws, dataset, p), rng,
                              claim, part, PAPER["hybrids"], MARGINS["hybrids"]) for p in parents}
            verdicts = {p: r["verdict"] for p, r in each.items()}
            fewest = min(parents, key=lambda p: need(m.loc[p]))
            for outcome in ("differs", "out of range", "undecided", "no effect"):
                if outcome in verdicts.values():
                    parent = next(p for p in parents if verdicts[p] == outcome)
                    break
            else:
                parent = fewest  # agrees against both
            row = each[parent]
            if row["verdict"] == "agrees":
                row["p"] = max(r["p"] for r in each.values())  # both comparisons must hold
            which = "the parent needing fewer" if parent == fewest else "the parent that decides"
            rows.append({**row, "text": f"{fam.title} → {models.family(parent).title} ({which}): " + row["text"],
                         "dataset": dataset})
    return rows or [undecided(claim, "hybrids vs their parents", PAPER["hybrids"], "the study trains no hybrid family",
                              "regimes")]


def hybrids_on_frontier(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """A hybrid owns part of a bytes frontier: per dataset, the share of the frontier's points (``frontier.pareto``
    over every family, chosen on validation) that are hybrids; the seeds of every variant resampled, the frontier
    drawn again in each draw. ``table``: the frontier table (one row per seed of every variant)."""
    rng = np.random.default_rng(seed)
    claim, rows = "A hybrid owns part of the bytes frontier", []
    hybrid = set(models.hybrids())
    if table.empty or not hybrid & set(table.family):
        return [undecided(claim, "hybrids on the frontier", PAPER["hybrids"], "the frontier holds no hybrid model",
                          "smallest")]
    for dataset, t in table.groupby("dataset", sort=False):
        summary = frontier.summarise(t)
        points = frontier.pareto(summary, by=("dataset",))
        share = points.family.isin(hybrid).mean()
        # what racing stopped is beaten on the whole split by a no-larger variant (with probability 1 - its alpha),
        # so it is held off the frontier in every draw, not resampled
        pool = summary[summary.finished].reset_index(drop=True)
        means = _resample_seeds(pool[frontier.KEYS].merge(t, on=frontier.KEYS), "val_acc", frontier.KEYS, n_boot,
                                rng)  # (n_boot, variants), the variants in the sorted order of their keys
        pool = pool.sort_values(frontier.KEYS, ignore_index=True)
        floor = chance(pool).to_numpy() + THRESHOLDS["fail_margin"].default
        size, is_hybrid = pool.size_bytes.to_numpy(), pool.family.isin(hybrid).to_numpy()
        draws = []
        for acc in np.where(means >= floor, means, -np.inf):  # a variant that learned nothing is no point
            on = frontier.front(size, acc)
            draws.append(is_hybrid[on].mean() if on.any() else np.nan)
        low, high, v, p = decide(draws, null=1e-9)
        owned = points[points.family.isin(hybrid)]
        span = (f", from {int(owned.size_bytes.min()):,} to {int(owned.size_bytes.max()):,} bytes" if len(owned)
                else "")
        rows.append(_row(claim, f"{data.spec(dataset).title}: the hybrids' share of the frontier", PAPER["hybrids"],
                         share, low, high, f"{len(owned)} of its {len(points)} points ({share:.0%}; "
                         f"{between(f'{low:.0%}', f'{high:.0%}')}){span}", v, "smallest", dataset, p=p))
    return rows


PAPER = {
    "regimes": "three regimes, unstable, learning and overfitting, organised along the number of learnable parameters",
    "shape": "for larger networks, accuracy is nearly invariant to the layer shape",
    "minimal": "a minimal number of learnable parameters for stable learning, which grows with task difficulty",
    "redundancy": "parameter redundancy as high as 60 %",
    "depth": "deeper architectures are more resilient to pruning than shallower ones",
    "quantization": "reduced precision hurts models with fewer parameters, and harder datasets, more",
    "hybrids": "proposed as future work: hybrid architectures combining different network types (not measured there)",
}


def stability(runs: pd.DataFrame, ranges: dict = regimes.SENSITIVITY, n_boot: int = 200) -> pd.DataFrame:
    """The verdict of every claim part that reads the regime thresholds (the regimes' order, the minimal sizes'
    growth and the hybrids' sizes) under each setting of the sensitivity ranges (one threshold moved at a time, as
    the regimes chapter moves them), Holm-corrected as the book's: one row per part and setting."""
    rows = []
    for name, values in ranges.items():
        for value in values:
            th = regimes.Thresholds(**{**asdict(regimes.Thresholds()), name: value})
            features = regimes.mark(runs, th)
            configs = regimes.configurations(features, th)
            minimal, draws = regimes.minimal_params(features, th), regimes.minimal_draws(features, th)
            claims = holm(pd.DataFrame(regimes_ordered(configs, n_boot) + minimal_grows(minimal, draws, configs)
                                       + hybrids_learn_smaller(minimal, draws)))
            rows.append(claims[["claim", "part", "verdict"]].assign(threshold=name, value=value))
    return pd.concat(rows, ignore_index=True)


def all_claims(configs, runs, minimal, draws, redundancy, matched, tolerance, front,
               n_boot: int = 1000) -> pd.DataFrame:
    """Every claim part, in the paper's order, then the hybrids' (``front``: the frontier table), Holm-corrected
    within each claim; ``stable`` of ``settings``: under how many threshold settings (``stability``) a part keeps
    its verdict (NaN for the parts that do not read the thresholds)."""
    rows = (regimes_ordered(configs, n_boot) + shape_invariance(runs, n_boot) + minimal_grows(minimal, draws, configs)
            + redundancy_high(redundancy, n_boot=n_boot) + depth_resilience(matched, n_boot)
            + quantization_hurts(tolerance, n_boot=n_boot) + hybrids_learn_smaller(minimal, draws)
            + hybrids_on_frontier(front, n_boot))
    claims = holm(pd.DataFrame(rows))
    moved = stability(runs).merge(claims[["claim", "part", "verdict"]], on=["claim", "part"],
                                  suffixes=("", "_book"))
    kept = (moved.verdict == moved.verdict_book).groupby([moved.claim, moved.part]).agg(["sum", "size"])
    kept.columns = ["stable", "settings"]
    return claims.merge(kept.reset_index(), on=["claim", "part"], how="left")


# -- what the chapters say -------------------------------------------------------------------------------------------

def one_dataset(configs: pd.DataFrame, runs: pd.DataFrame, redundancy: pd.DataFrame, matched: pd.DataFrame,
                tolerance: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """The claim parts one dataset can answer, by the same rules as ``all_claims`` on that dataset's tables alone:
    what a dataset's chapters say, so that a chapter and the findings differ in the data they pool, never in the
    rule. Not Holm-corrected (each chapter states its parts apart)."""
    rows = (regimes_ordered(configs, n_boot) + shape_invariance(runs, n_boot)
            + redundancy_high(redundancy, n_boot=n_boot) + depth_resilience(matched, n_boot)
            + quantization_hurts(tolerance, n_boot=n_boot)[:1])
    return pd.DataFrame(rows)


def said(verdicts: pd.DataFrame, figure: str, title: str) -> str:
    """The parts of ``verdicts`` (``one_dataset``) that a chapter (``figure``: sweep, regimes, pruning,
    quantization) shows, one line each: the paper's words, this dataset's estimate and the verdict."""
    lines = [f"- *The paper: {r.paper}.* On {title} alone ({r.part}): {r.text}: **{r.verdict}**"
             + (f" (the smallest effect that matters: {r.margin})" if isinstance(r.margin, str) and r.margin else "")
             + "." for r in verdicts[verdicts.figure == figure].itertuples()]
    return ("\n".join(lines) + "\n\nThe findings chapter applies the same rules to every dataset pooled."
            if lines else "")


def shape_in_words(spread: pd.DataFrame) -> str:
    """What ``regimes.shape_spread`` shows on either side of ``SMALL`` parameters, the border the shape claim is
    tested at: the widest and the median spread of accuracy across shapes of similar size."""
    compared = spread.dropna(subset=["spread"])  # bins with at least two configurations
    small, large = compared[compared.params_max < SMALL].spread, compared[compared.params_min >= SMALL].spread
    if small.empty or large.empty:
        return f"The grid does not reach both sides of {SMALL:,.0f} parameters, so the two sizes cannot be compared."
    return (f"Below {SMALL:,.0f} parameters, configurations of similar size differ by up to **{small.max():.1%}** in "
            f"test accuracy (median {small.median():.1%} per half-decade bin); from {SMALL:,.0f} parameters on by up "
            f"to **{large.max():.1%}** (median {large.median():.1%}).")


def summary_in_words(claims: pd.DataFrame, study, paper) -> str:
    """How the findings table's verdicts count, the paper's parts and the hybrids' apart, and what would settle
    the undecided ones (``paper``: the paper profile) on a ``study`` smaller than it."""
    beyond = claims.paper == PAPER["hybrids"]  # the paper's future work, measured here
    counts = claims[~beyond].verdict.value_counts().reindex(list(VERDICTS), fill_value=0)
    undecided = claims[~beyond & (claims.verdict == "undecided")]
    text = (f"Of the paper's {(~beyond).sum()} claim parts, {counts['agrees']} agree with it, {counts['differs']} "
            f"differ, {counts['no effect']} find no effect beyond the smallest that matters, "
            f"{counts['out of range']} lie out of the family's range and {counts['undecided']} are undecided on the "
            f"`{study.name}` profile ({study.in_words()}).")
    if len(undecided) and study.name != paper.name:
        configurations = sum(len(g.values) for g in paper.grids.values())
        text += (f" The undecided parts ({'; '.join(undecided.part)}) are what this profile cannot settle: its "
                 f"intervals are too wide or its grid too coarse. The `{paper.name}` profile trains {paper.seeds} "
                 f"seeds per configuration on the whole training split for {paper.epochs} epochs, over "
                 f"{configurations:,} configurations per dataset, which narrows the intervals and extends the grids "
                 f"below and above today's bounds; it needs a GPU or a cluster (the manual's *Profiles and sweeps* "
                 f"page says how).")
    if counts["differs"]:
        text += " Where a part *differs*, the linked chapter shows the data behind it."
    if beyond.any():
        hybrid = claims[beyond].verdict.value_counts().reindex(list(VERDICTS), fill_value=0)
        text += (f"\n\nBeyond the paper, its proposed future work: of {beyond.sum()} parts on the hybrid families "
                 f"(convolutional stems with an MLP or attention head), {hybrid['agrees']} hold, {hybrid['differs']} "
                 f"do not, {hybrid['no effect']} find no effect, {hybrid['out of range']} lie out of a parent's range "
                 f"and {hybrid['undecided']} are undecided.")
    return text
