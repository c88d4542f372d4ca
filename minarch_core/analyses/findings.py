"""The paper's claims as rules over the saved tables: each claim part an estimate, a bootstrap interval and a verdict.

A verdict means what it says: ``agrees`` when the whole interval lies on the paper's side of the null, ``differs``
when it lies wholly on the other side, ``undecided`` when it spans the null (the data cannot tell). Intervals
resample seeds within configurations and, where models are compared, the models (configurations or size bands)
themselves. A minimal-parameter estimate that is only a bound (the family's smallest configuration already
learns, or its largest does not) is compared as a bound, never as a point.

Each rule takes tidy analysis tables (``tables``, stacked over datasets with a ``dataset`` column) and returns
one row per claim part: ``claim``, ``part``, ``paper`` (what the paper says), ``estimate``, ``low``, ``high``,
``text`` (the estimate in words), ``verdict`` and ``figure`` (the chapter that shows it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..engine import data, models
from . import frontier
from .common import between, chance
from .regimes import LEARNS, THRESHOLDS, shape_spread

VERDICTS = ("agrees", "differs", "undecided")
LEVEL = 0.95  # of every interval
SMALL = 1e4  # parameters: the border between small and large networks in the shape claim


def verdict(low: float, high: float, null: float = 0.0, paper_side: str = "above") -> str:
    """``agrees`` if the interval lies wholly on the paper's side of ``null``, ``differs`` if wholly on the other,
    else ``undecided`` (an interval may be open-ended: a draw beyond the grid counts as infinite)."""
    if np.isnan(low) or np.isnan(high):
        return "undecided"
    above, below = low > null, high < null
    if paper_side == "below":
        above, below = below, above
    return "agrees" if above else "differs" if below else "undecided"


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


def _row(claim, part, paper, estimate, low, high, text, verdict_, figure, dataset=None):
    return {"claim": claim, "part": part, "paper": paper, "estimate": estimate, "low": low, "high": high,
            "text": text, "verdict": verdict_, "figure": figure, "dataset": dataset}


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
        low, high = interval(draws)
        rows.append(_row(claim, part, PAPER["regimes"], 10 ** point, 10 ** low, 10 ** high,
                         f"{times(10 ** point)} the parameters (median, over {len(strata)} family and dataset "
                         f"pairs; {between(times(10 ** low), times(10 ** high))})", verdict(low, high),
                         "regimes"))
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
    low, high = interval([difference(m) for m in means])
    return [_row(claim, part, PAPER["shape"], estimate, low, high,
                 f"{estimate * 100:+.1f} points of median spread across shapes at matched size, large minus small "
                 f"({between(f'{low * 100:+.1f}', f'{high * 100:+.1f}')})", verdict(low, high, paper_side="below"),
                 "sweep")]


# -- minimal parameters ----------------------------------------------------------------------------------------------

def minimal_grows(minimal: pd.DataFrame, draws: pd.DataFrame, seed: int = 0) -> list[dict]:
    """The minimal number of learnable parameters grows with task difficulty: per family and per pair of datasets
    of consecutive difficulty, the ratio harder / easier, its interval from the two bootstrap distributions; a
    bound is compared as a bound."""
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
            part = f"{models.family(family).title}: {data.spec(easy).title} → {data.spec(hard).title}"
            rows.append({**_fewer(e, h, _draws(draws, easy, family), _draws(draws, hard, family), rng,
                                  "A minimal number of learnable parameters, growing with task difficulty", part,
                                  PAPER["minimal"]), "dataset": hard})
    return rows


def _draws(draws: pd.DataFrame, dataset: str, family: str) -> np.ndarray:
    """The bootstrap draws of one minimal count; a draw that never learns is beyond the grid (infinite)."""
    return np.nan_to_num(draws[(draws.dataset == dataset) & (draws.family == family)].min_params.to_numpy(float),
                         nan=np.inf)


def _fewer(e, h, de, dh, rng, claim, part, paper, figure="regimes") -> dict:
    """Does minimal row ``e`` need fewer parameters than row ``h``: the ratio h / e, its interval from the two
    bootstrap distributions ``de`` and ``dh`` (paired at random); where either is a bound, only an ordering the
    bounds imply is a verdict."""
    say = lambda r: ("not reached within the grid (more than {:,.0f})".format(r.largest) if r.bound == "not reached"  # noqa: E731
                     else f"at most {r.min_params:,.0f}" if r.bound == "at most" else f"{r.min_params:,.0f}")
    text = f"{say(e)} → {say(h)}"
    if e.bound == "exact" and h.bound == "exact":
        n = min(len(de), len(dh))
        with np.errstate(invalid="ignore", divide="ignore"):  # a draw beyond the grid: an infinite or zero ratio
            low, high = interval(np.log(rng.permutation(dh)[:n] / rng.permutation(de)[:n] if n else np.array([])))
        ratio = h.min_params / e.min_params
        return _row(claim, part, paper, ratio, np.exp(low), np.exp(high),
                    f"{text}: {times(ratio)} ({between(times(np.exp(low)), times(np.exp(high)))})",
                    verdict(low, high), figure)
    if e.bound == "not reached" and h.bound == "not reached":
        v = "undecided"
    elif h.bound == "not reached":
        v = "agrees"  # h needs more than the grid holds; e less
    elif e.bound == "not reached":
        v = "differs"
    elif e.bound == "at most" and h.bound == "exact":
        v = "agrees" if h.min_params > e.min_params else "undecided"
    elif h.bound == "at most" and e.bound == "exact":
        v = "differs" if e.min_params > h.min_params else "undecided"
    else:
        v = "undecided"  # both at most: the grid starts too large to tell
    return _row(claim, part, paper, np.nan, np.nan, np.nan, text + " (a bound: compared as a bound)", v, figure)


# -- pruning ---------------------------------------------------------------------------------------------------------

def redundancy_high(redundancy: pd.DataFrame, threshold: float = 0.6, n_boot: int = 1000, seed: int = 0) -> list[dict]:
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
    low, high = interval(_resample_seeds(g, "redundancy", keys, n_boot, rng).max(axis=1))
    dataset, best = point.idxmax()[0], g[g.config_id == point.idxmax()[1]].model.iloc[0]
    return [_row(claim, part, PAPER["redundancy"], point.max(), low, high,
                 f"{point.max():.0%} ({best}, {data.spec(dataset).title}; {between(f'{low:.0%}', f'{high:.0%}')})",
                 verdict(low, high, null=threshold - 1e-9), "pruning", dataset)]


def depth_resilience(matched: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Deeper networks are more resilient to pruning, at matched parameter count: per size band, the mean
    redundancy of the deepest minus the shallowest network; the mean over bands, bands and seeds resampled."""
    rng = np.random.default_rng(seed)
    rows = []
    if matched.empty:
        return [undecided("Deeper networks are more resilient to pruning", "depth at matched size", PAPER["depth"],
                          "no size band holds a network of every depth that learns the task", "pruning")]
    for dataset, m in matched.groupby("dataset", sort=False):
        m = m.dropna(subset=["redundancy"])
        lo_depth, hi_depth = m.depth.min(), m.depth.max()
        bands = [b for b, g in m.groupby("band") if {lo_depth, hi_depth} <= set(g.depth)]
        if not bands or lo_depth == hi_depth:
            continue
        cells = {(b, d): g.redundancy.to_numpy(float) for (b, d), g in m.groupby(["band", "depth"]) if b in bands}
        point = np.mean([cells[b, hi_depth].mean() - cells[b, lo_depth].mean() for b in bands])
        draws = []
        for _ in range(n_boot):
            chosen = rng.choice(bands, len(bands))
            draws.append(np.mean([rng.choice(cells[b, hi_depth], len(cells[b, hi_depth])).mean()
                                  - rng.choice(cells[b, lo_depth], len(cells[b, lo_depth])).mean() for b in chosen]))
        low, high = interval(draws)
        rows.append(_row("Deeper networks are more resilient to pruning",
                         f"{data.spec(dataset).title}: depth {hi_depth} vs {lo_depth} at matched size",
                         PAPER["depth"], point, low, high,
                         f"{point * 100:+.0f} points of redundancy over {len(bands)} size bands "
                         f"({between(f'{low * 100:+.0f}', f'{high * 100:+.0f}')})", verdict(low, high), "pruning", dataset))
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
    rho = spearmanr(x, y).statistic
    draws = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        draws.append(spearmanr(x[i], y[i]).statistic if len(np.unique(x[i])) > 1 else np.nan)
    low, high = interval(draws)
    claim = "Quantization hurts smaller models, and harder datasets, more"
    rows = [_row(claim, f"smaller models lose more at {bits} bits", PAPER["quantization"], rho, low, high,
                 f"rank correlation of size and relative {bits}-bit loss {rho:+.2f} "
                 f"({between(f'{low:+.2f}', f'{high:+.2f}')})", verdict(low, high, paper_side="below"), "quantization")]
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
        low, high = interval([gap(per_model.iloc[np.concatenate([rng.choice(m, len(m)) for m in members])])
                              for _ in range(n_boot)])
        rows.append(_row(claim, part, PAPER["quantization"], point, low, high,
                         f"{point * 100:+.1f} points more of its learned accuracy lost at {bits} bits, at "
                         f"{10 ** at:,.0f} parameters ({between(f'{low * 100:+.1f}', f'{high * 100:+.1f}')})",
                         verdict(low, high), "quantization", hard))
    return rows


# -- hybrids (the paper's future work) --------------------------------------------------------------------------------

def hybrids_learn_smaller(minimal: pd.DataFrame, draws: pd.DataFrame, seed: int = 0) -> list[dict]:
    """Hybrids learn with fewer parameters than both parents: per dataset and hybrid (``models.hybrids``), its
    minimal count against that of the parent needing the fewest; the ratio parent / hybrid (above 1: the hybrid
    needs fewer), its interval from both bootstrap distributions, a bound compared as a bound."""
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
            parent = min(parents, key=lambda p: need(m.loc[p]))
            row = _fewer(m.loc[name], m.loc[parent], _draws(draws, dataset, name), _draws(draws, dataset, parent), rng,
                         claim, part, PAPER["hybrids"])
            rows.append({**row, "text": f"{fam.title} → {models.family(parent).title} (the parent needing fewer): "
                                        + row["text"], "dataset": dataset})
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
        pool = summary[summary.finished].reset_index(drop=True)  # what racing stopped is beaten, in every draw
        means = _resample_seeds(pool[frontier.KEYS].merge(t, on=frontier.KEYS), "val_acc", frontier.KEYS, n_boot,
                                rng)  # (n_boot, variants), the variants in the sorted order of their keys
        pool = pool.sort_values(frontier.KEYS, ignore_index=True)
        floor = chance(pool).to_numpy() + THRESHOLDS["fail_margin"].default
        size, is_hybrid = pool.size_bytes.to_numpy(), pool.family.isin(hybrid).to_numpy()
        draws = []
        for acc in np.where(means >= floor, means, -np.inf):  # a variant that learned nothing is no point
            on = frontier.front(size, acc)
            draws.append(is_hybrid[on].mean() if on.any() else np.nan)
        low, high = interval(draws)
        owned = points[points.family.isin(hybrid)]
        span = (f", from {int(owned.size_bytes.min()):,} to {int(owned.size_bytes.max()):,} bytes" if len(owned)
                else "")
        rows.append(_row(claim, f"{data.spec(dataset).title}: the hybrids' share of the frontier", PAPER["hybrids"],
                         share, low, high, f"{len(owned)} of its {len(points)} points ({share:.0%}; "
                         f"{between(f'{low:.0%}', f'{high:.0%}')}){span}", verdict(low, high, null=1e-9),
                         "smallest", dataset))
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


def all_claims(configs, runs, minimal, draws, redundancy, matched, tolerance, front,
               n_boot: int = 1000) -> pd.DataFrame:
    """Every claim part, in the paper's order, then the hybrids' (``front``: the frontier table)."""
    rows = (regimes_ordered(configs, n_boot) + shape_invariance(runs, n_boot) + minimal_grows(minimal, draws)
            + redundancy_high(redundancy, n_boot=n_boot) + depth_resilience(matched, n_boot)
            + quantization_hurts(tolerance, n_boot=n_boot) + hybrids_learn_smaller(minimal, draws)
            + hybrids_on_frontier(front, n_boot))
    return pd.DataFrame(rows)
