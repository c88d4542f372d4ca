"""Convergence regimes: which configurations are unstable, which learn too little, which learn, which overfit; and
from how many learnable parameters learning becomes reliable.

Everything here reads two tidy frames from the store (``Store.table`` and ``Store.histories``) and returns tidy
frames; nothing trains. The operational definitions are ours (the paper does not publish them) and every threshold
is a field of ``Thresholds``:

- A seed **failed** when it diverged or its final test accuracy is below chance + ``fail_margin``.
- A seed is **below level** when its final test accuracy is below chance + ``min_level`` x (plateau - chance),
  the plateau being the best mean test accuracy of any configuration of its family on its dataset: it has not
  learned the task as its family can.
- A configuration is **unstable** when more than ``max_failed`` of its seeds failed, or the standard deviation of
  its seeds' final test accuracy exceeds ``max_std``: whether it learns depends on the seed.
- Otherwise it is **underfitting** when more than ``max_failed`` of its seeds are below level: it reliably learns
  something, but not the task (the paper's "stable learning" means learning the task, not failing the same way
  every time).
- Otherwise it **overfits** when, averaged over seeds, the validation loss ends more than ``max_upturn`` (relative)
  above its minimum (both read off the history, whose rows share one monitor subset of the validation split), or
  the final train-test accuracy gap (whole splits) exceeds ``max_gap``.
- Otherwise it is **learning**.

The minimal number of learnable parameters of a family on a dataset is read off a dose-response (``dose``): the
probability that a seed of a square configuration learns the task (it neither failed nor stayed below level),
fitted against log10(parameters), reaches ``learn_probability`` there; its interval is the profile likelihood's.
When no seed of the family fails, or the fitted crossing lies below its smallest configuration, it is an upper
bound ("at most"); when no seed learns, or the crossing lies beyond its largest, the grid does not reach it ("not
reached").
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from ..engine import models
from ..engine.params import Param, check_fields
from . import dose
from .common import between, chance, square

GROUP = ["dataset", "family", "config_id"]


THRESHOLDS = {p.name: p for p in (
    Param("fail_margin", float, 0.10, "a seed failed below the dataset's chance + this accuracy", 0, 1),
    Param("max_failed", float, 0.10, "unstable above this fraction of failed seeds (underfitting above this "
          "fraction of seeds below level)", 0, 1),
    Param("max_std", float, 0.02, "unstable above this spread (std) of final test accuracy over seeds", 0, 1),
    Param("max_upturn", float, 0.10, "overfitting above this relative rise of validation loss after its minimum",
          0, 100),
    Param("max_gap", float, 0.05, "overfitting above this train-test accuracy gap", 0, 1),
    Param("min_level", float, 0.8, "a seed learned the task at this fraction of the way from chance to its "
          "family's plateau", 0, 1),
    Param("learn_probability", float, 0.9, "the minimal size is where the fitted probability that a seed learns "
          "the task reaches this level", 0.5, 0.99),
)}
REGIMES = ("unstable", "underfitting", "learning", "overfitting")
LEARNS = ("learning", "overfitting")  # the regimes that learn the task
# the ranges over which the sensitivity analysis moves each threshold that the minimal size reads
SENSITIVITY = {"fail_margin": (0.05, 0.1, 0.15, 0.2, 0.3), "min_level": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
               "learn_probability": (0.5, 0.75, 0.9, 0.95)}
LEVEL = 0.95  # of the minimal size's interval


@dataclass(frozen=True)
class Thresholds:
    fail_margin: float = THRESHOLDS["fail_margin"].default
    max_failed: float = THRESHOLDS["max_failed"].default
    max_std: float = THRESHOLDS["max_std"].default
    max_upturn: float = THRESHOLDS["max_upturn"].default
    max_gap: float = THRESHOLDS["max_gap"].default
    min_level: float = THRESHOLDS["min_level"].default
    learn_probability: float = THRESHOLDS["learn_probability"].default

    def __post_init__(self):
        check_fields(self, THRESHOLDS, "regime threshold")


def run_features(table: pd.DataFrame, histories: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per run: its table row plus the validation-loss minimum and upturn and the seed flags."""
    h = histories[histories.epoch > 0]
    per_run = h.groupby("run_id").agg(min_val_loss=("val_loss", "min"))
    finite = h.dropna(subset=["val_loss"])  # a run that diverged at once has no finite validation loss
    per_run["min_val_epoch"] = finite.loc[finite.groupby("run_id").val_loss.idxmin(), ["run_id", "epoch"]] \
        .set_index("run_id").epoch
    # the upturn compares the history's own rows (all on the same monitor subset), not the whole-split final loss
    per_run["last_val_loss"] = h.sort_values("epoch").groupby("run_id").tail(1).set_index("run_id").val_loss
    out = table.join(per_run, on="run_id")
    out["gap"] = out.train_acc - out.test_acc
    out["upturn"] = (out.last_val_loss - out.min_val_loss) / out.min_val_loss
    return mark(out, th)


def mark(features: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """Each run's seed flags under ``th``: ``failed``, and ``below_level`` against its family's ``plateau``."""
    out = features.copy()
    base = chance(out)
    config_mean = out.groupby(GROUP).test_acc.transform("mean")
    out["plateau"] = config_mean.groupby([out.dataset, out.family]).transform("max")
    out["failed"] = (out.status == "diverged") | ~(out.test_acc >= base + th.fail_margin)
    out["below_level"] = ~(out.test_acc >= base + th.min_level * (out.plateau - base))
    out["learned"] = ~out.failed & ~out.below_level
    return out


def classify(failed_frac, test_std, below_frac, gap, upturn, th: Thresholds = Thresholds()):
    """The regime of each configuration from its seed statistics (arrays or scalars)."""
    failed_frac, test_std, below_frac, gap, upturn = map(np.asarray, (failed_frac, test_std, below_frac, gap, upturn))
    unstable = (failed_frac > th.max_failed) | (np.nan_to_num(test_std) > th.max_std)
    underfitting = below_frac > th.max_failed
    overfitting = (np.nan_to_num(upturn) > th.max_upturn) | (np.nan_to_num(gap) > th.max_gap)
    return np.where(unstable, "unstable", np.where(underfitting, "underfitting",
                                                   np.where(overfitting, "overfitting", "learning")))


def configurations(features: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per configuration (its seeds pooled): accuracy level and spread, gap, failures, trend, regime."""
    g = features.groupby(GROUP, sort=False)
    q = g.test_acc.quantile([0.1, 0.5, 0.9]).unstack()
    out = pd.DataFrame({
        **{k: g[k].first() for k in models.arch_columns() if k != "family" and k in features},
        "seeds": g.size(),
        "test_mean": g.test_acc.mean(), "test_std": g.test_acc.std(), "test_min": g.test_acc.min(),
        "test_max": g.test_acc.max(), "test_q10": q[0.1], "test_q50": q[0.5], "test_q90": q[0.9],
        "train_mean": g.train_acc.mean(), "gap": g.gap.mean(),
        "failed_frac": g.failed.mean(), "below_level_frac": g.below_level.mean(), "plateau": g.plateau.first(),
        "diverged_frac": g.status.agg(lambda s: (s == "diverged").mean()),
        "upturn": g.upturn.mean(), "min_val_epoch": g.min_val_epoch.median(),
    })
    out["regime"] = classify(out.failed_frac, out.test_std, out.below_level_frac, out.gap, out.upturn, th)
    return out.reset_index().sort_values(["dataset", "family", "n_params"], ignore_index=True)


def minimal_params(features: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """Per dataset and family: the minimal size of the dose-response (``dose``) over its square configurations, with
    its profile-likelihood interval (``ci_low`` 0 or ``ci_high`` inf where it reaches the searched edge) and the
    fitted curve (``fitted``: where it reaches the level, even outside the grid; ``slope``). ``bound``
    says how to read it: ``exact``; ``at most`` the family's smallest configuration when no seed fails or the
    crossing lies below it (the grid cannot place it); ``not reached`` (NaN) when no seed learns or the crossing
    lies beyond the largest."""
    rows = []
    for (dataset, family), x, learned, fit in _fits(features, th):
        smallest, largest = 10 ** x.min(), 10 ** x.max()
        row = {"dataset": dataset, "family": family, "min_params": np.nan, "bound": "not reached",
               "ci_low": np.nan, "ci_high": np.nan, "fitted": np.nan, "slope": np.nan, "level": th.learn_probability,
               "learned": int(learned.sum()), "seeds": len(learned), "smallest": smallest, "largest": largest,
               "configs": len(np.unique(x))}
        if fit is not None:
            row.update(min_params=10 ** fit.point, ci_low=10 ** fit.low, ci_high=10 ** fit.high,
                       fitted=10 ** fit.point, slope=fit.slope)
        alone = fit is None and learned.mean() >= th.learn_probability  # one size, learning often enough
        if learned.all() or alone or (fit is not None and fit.point < x.min()):
            row.update(min_params=smallest, bound="at most")
        elif fit is not None and fit.point <= x.max():
            row.update(bound="exact")
        else:
            row.update(min_params=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def minimal_in_words(minimal: pd.DataFrame, title: str | None = None) -> str:
    """One line per family of ``minimal_params``, worded by its bound; under a heading sentence naming the dataset
    ``title`` when given."""
    lines = [f"Minimal learnable parameters for learning the task on {title}:\n"] if title else []
    for r in minimal.itertuples():
        name = models.family(r.family).title
        of = f"{r.learned} of its {r.seeds} seeds learned the task"
        if r.bound == "not reached":
            lines.append(f"- **{name}**: not reached within the grid: even its largest configuration "
                         f"({r.largest:,.0f} parameters) does not learn the task with probability {r.level:.0%} "
                         f"({of})")
        elif r.bound == "at most":
            lines.append(f"- **{name}**: at most {r.min_params:,.0f} parameters, its smallest configuration: "
                         + ("every seed of every configuration learned the task" if r.learned == r.seeds else
                            f"the fitted crossing lies below the grid ({of})")
                         + ", so how much smaller a network of this family could be is outside its range")
        else:
            low = "below the grid" if r.ci_low == 0 else f"{r.ci_low:,.0f}"
            high = "beyond the grid" if np.isinf(r.ci_high) else f"{r.ci_high:,.0f}"
            lines.append(f"- **{name}**: {r.min_params:,.0f} parameters ({between(low, high)}; a seed learns with "
                         f"probability {r.level:.0%} there, {of})")
    return "\n".join(lines)


def regime_counts(configs: pd.DataFrame) -> pd.DataFrame:
    """How many configurations of each family fall in each regime (every regime a column, in ``REGIMES`` order)."""
    counts = configs.pivot_table(index="family", columns="regime", values="config_id", aggfunc="count",
                                 fill_value=0)
    return counts.reindex(columns=list(REGIMES), fill_value=0).reset_index()


def sensitivity_in_words(sensitivity_: pd.DataFrame) -> str:
    """``sensitivity`` in one line per family: the range its minimal size spans over every threshold setting, the
    threshold that moves it most, and those whose values leave it outside the grid."""
    lines = []
    for family, m in sensitivity_.groupby("family"):
        name, found = models.family(family).title, m.dropna(subset=["min_params"])
        if found.empty:
            lines.append(f"- **{name}**: never reached")
            continue
        ratio = found.groupby("threshold").min_params.agg(lambda v: v.max() / v.min())
        lost = sorted(set(m.threshold[m.min_params.isna()]))
        lines.append(f"- **{name}**: from {found.min_params.min():,.0f} to {found.min_params.max():,.0f} parameters "
                     f"over every range"
                     + (f", moved most by `{ratio.idxmax()}` ({ratio.max():.1f}x)" if ratio.max() > 1 else
                        ", whatever the thresholds")
                     + (f"; some values of {', '.join(f'`{t}`' for t in lost)} leave it outside the grid"
                        if lost else ""))
    return "\n".join(lines)


def plateau_notes(plateau: pd.DataFrame, min_configs: int = 5) -> str:
    """Why a family of ``fit_plateau`` has no curve: too few configurations, or a fit that failed."""
    declined = plateau[plateau.plateau.isna()]
    return " ".join(
        f"{models.family(r.family).title} has only {r.configs} configurations: a four-parameter curve through so few "
        f"points would fit them whatever their shape, so no curve is fitted." if r.configs < min_configs else
        f"The fit failed for {models.family(r.family).title} (too flat or too few distinct levels)."
        for r in declined.itertuples())


def representatives_in_words(reps: pd.DataFrame) -> str:
    """How ``representatives`` chose the models the pruning and quantization chapters study."""
    return (f"The pruning and quantization chapters study **{reps.config_id.nunique()} representative models**, "
            f"chosen by rule: per family and depth, the smallest and the largest configuration that learns the task "
            f"and one between, each with its {reps.groupby('config_id').size().min()} lowest seeds "
            f"({len(reps)} trained networks), so that every curve shows its spread over seeds.")


def minimal_draws(features: pd.DataFrame, th: Thresholds = Thresholds(), n_draws: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Draws of each minimal count from its confidence distribution (``dose.Estimate.draws``; a bound: its value,
    NaN when not reached), one row per draw: what the findings compare across datasets."""
    rng, frames = np.random.default_rng(seed), []
    for (d, f), x, learned, fit in _fits(features, th):
        if learned.all() or (fit is None and learned.mean() >= th.learn_probability):
            values = np.full(n_draws, 10 ** x.min())
        else:
            values = fit.draws(n_draws, rng) if fit is not None else np.full(n_draws, np.nan)
        frames.append(pd.DataFrame({"dataset": d, "family": f, "draw": np.arange(n_draws), "min_params": values,
                                    "smallest": 10 ** x.min()}))
    return pd.concat(frames, ignore_index=True)


def sensitivity(features: pd.DataFrame, ranges: dict = SENSITIVITY, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """How the minimal-parameter estimate (and its interval) of each dataset and family moves as each threshold
    that it reads is varied over its range (``SENSITIVITY``), the others held at ``th``."""
    rows = []
    for name, values in ranges.items():
        for value in values:
            moved = Thresholds(**{**asdict(th), name: value})
            m = minimal_params(mark(features, moved), moved)
            rows.append(m[["dataset", "family", "min_params", "bound", "ci_low", "ci_high", "smallest",
                           "largest"]].assign(threshold=name, value=value, default=getattr(th, name)))
    return pd.concat(rows, ignore_index=True)


def outcomes(features: pd.DataFrame) -> pd.DataFrame:
    """Per square configuration: how many of its seeds learned the task (what the dose-response is fitted to)."""
    g = square(features).groupby(["dataset", "family", "config_id"], sort=True)
    out = g.agg(n_params=("n_params", "first"), learned=("learned", "sum"), seeds=("learned", "size"))
    if "model" in features:
        out["model"] = g.model.first()
    return out.reset_index().assign(fraction=lambda f: f.learned / f.seeds)


def dose_curves(minimal: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """The fitted probability that a seed learns, against parameters, of every family of ``minimal`` that has a
    fit, over its grid and a little beyond (for the regimes figure)."""
    frames = []
    for r in minimal.dropna(subset=["fitted"]).itertuples():
        x = np.linspace(np.log10(r.smallest) - 0.3, np.log10(r.largest) + 0.3, points)
        frames.append(pd.DataFrame({"dataset": r.dataset, "family": r.family, "n_params": 10 ** x,
                                    "probability": dose.probability(x, np.log10(r.fitted), r.slope, r.level)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["dataset", "family", "n_params", "probability"])


def _fits(features, th):
    """Per dataset and family of the square configurations: (key, log10 parameters and outcome per run, the fitted
    ``dose.Estimate`` or None where every seed or none learned, or all come from one size)."""
    for key, f in square(features).groupby(["dataset", "family"], sort=True):
        x, learned = np.log10(f.n_params.to_numpy(float)), f.learned.to_numpy(bool)
        crossing = 0 < learned.sum() < len(learned) and len(np.unique(x)) > 1
        fit = dose.fit(x, learned, th.learn_probability, LEVEL) if crossing else None
        yield key, x, learned, fit


def logistic(x, lo, hi, k, x0):
    return lo + (hi - lo) / (1 + np.exp(-k * (x - x0)))


def fit_plateau(configs: pd.DataFrame, fractions=(0.5, 0.9, 0.99), min_configs: int = 5) -> pd.DataFrame:
    """Per dataset and family, a logistic fit of mean test accuracy against log10(parameters), and the parameter
    counts at which the fit has climbed the given fractions of the way from its floor to its plateau. A family with
    fewer than ``min_configs`` configurations gets no fit (NaN): four points would fit the four-parameter curve
    exactly, whatever their shape."""
    rows = []
    for (dataset, family), c in configs.groupby(["dataset", "family"], sort=True):
        x, y = np.log10(c.n_params.to_numpy(float)), c.test_mean.to_numpy(float)
        row = {"dataset": dataset, "family": family, "configs": len(c)}
        try:
            if len(c) < min_configs:
                raise ValueError("too few configurations")
            with warnings.catch_warnings():  # the parameters' covariance, when it cannot be estimated, is not used
                warnings.simplefilter("ignore", OptimizeWarning)
                (lo, hi, k, x0), _ = curve_fit(logistic, x, y, p0=[y.min(), y.max(), 2.0, np.median(x)],
                                               bounds=([0, 0, 1e-3, x.min() - 3], [1, 1, 100, x.max() + 3]),
                                               maxfev=20000)
            row.update(floor=lo, plateau=hi, slope=k, log10_mid=x0,
                       rmse=float(np.sqrt(np.mean((logistic(x, lo, hi, k, x0) - y) ** 2))))
            row.update({f"params_{f:g}": 10 ** (x0 + np.log(f / (1 - f)) / k) for f in fractions})
        except (RuntimeError, ValueError, TypeError):  # too few or degenerate points: report, do not guess
            row.update(floor=np.nan, plateau=np.nan, slope=np.nan, log10_mid=np.nan, rmse=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def shape_spread(configs: pd.DataFrame, bins_per_decade: int = 2) -> pd.DataFrame:
    """Phase 1: for the configurations of the shaped families (``models.shaped``: the DNNs) binned by parameter
    count, how far mean test accuracy differs across shapes and depths in each bin (max - min, and std): small
    spreads at large sizes are the paper's shape invariance."""
    d = configs[configs.family.isin(models.shaped())].copy()
    d["bin"] = np.floor(np.log10(d.n_params) * bins_per_decade) / bins_per_decade
    g = d.groupby(["dataset", "bin"])
    out = g.agg(configs=("config_id", "size"), shapes=("shape", "nunique"), depths=("depth", "nunique"),
                params_min=("n_params", "min"), params_max=("n_params", "max"),
                acc_min=("test_mean", "min"), acc_max=("test_mean", "max"), acc_std=("test_mean", "std"))
    out["spread"] = (out.acc_max - out.acc_min).where(out.configs > 1)  # one configuration has nothing to compare
    return out.reset_index()


def representatives(configs: pd.DataFrame, features: pd.DataFrame, per_group: int = 3, seeds: int = 3) -> pd.DataFrame:
    """The models that the pruning and quantization chapters study, chosen by rule, never by hand.

    For each dataset, family and depth (DNNs: square networks only), among the configurations that learn the task
    (learning or overfitting) ordered by parameter count: the smallest, the largest, and between them those nearest
    to evenly spaced ranks, ``per_group`` in all; for each, the runs of its ``seeds`` lowest seeds (one row each),
    so that every pruning and quantization curve has a spread.
    """
    stable = configs[configs.regime.isin(LEARNS)]
    if "shape" in stable:  # families without shapes (NaN) count as square
        stable = stable[stable["shape"].fillna("equal") == "equal"]
    picks = []
    for _, g in stable.sort_values("n_params").groupby(["dataset", "family", "depth"], sort=True):
        ranks = np.unique(np.round(np.linspace(0, len(g) - 1, min(per_group, len(g)))).astype(int))
        picks.append(g.iloc[ranks].assign(size_rank=range(len(ranks))))
    out = pd.concat(picks, ignore_index=True) if picks else stable.head(0).assign(size_rank=[])
    return seed_runs(out, features, seeds)


def seed_runs(configs: pd.DataFrame, features: pd.DataFrame, seeds: int | None = 3) -> pd.DataFrame:
    """``configs`` with one row per run of their ``seeds`` lowest seeds (None: every seed; ``seed`` and ``run_id``
    added)."""
    runs = features.sort_values("seed")
    runs = (runs if seeds is None else runs.groupby("config_id").head(seeds))[["config_id", "seed", "run_id"]]
    return configs.merge(runs, on="config_id").sort_values(
        ["dataset", "family", "depth", "n_params", "seed"], ignore_index=True)


def examples(configs: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """One example configuration per regime (per dataset), for learning curves: the one at the median parameter
    count of that regime's configurations. Returns every seed's run, labelled with regime and architecture."""
    picks = configs.sort_values("n_params").groupby(["dataset", "regime"], sort=True).apply(
        lambda g: g.iloc[(len(g) - 1) // 2], include_groups=False).reset_index()
    picks["label"] = picks.regime + ": " + picks.model
    return features[["run_id", "config_id", "seed"]].merge(picks[["config_id", "regime", "label", "n_params"]])


def thresholds_table(th: Thresholds = Thresholds()) -> pd.DataFrame:
    """The thresholds in force and what each means, for the book's method chapter."""
    return pd.DataFrame([{"threshold": k, "value": v, "meaning": THRESHOLDS[k].help} for k, v in asdict(th).items()])
