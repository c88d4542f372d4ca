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

The minimal number of learnable parameters of a family on a dataset is the smallest parameter count from which
every larger configuration learns the task (learning or overfitting), with a bootstrap interval over seeds. When
the family's smallest configuration already learns, it is an upper bound ("at most"); when its largest does not,
the grid does not reach it ("not reached").
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from ..engine import models
from ..engine.params import Param, check_fields
from .common import between, chance

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
)}
REGIMES = ("unstable", "underfitting", "learning", "overfitting")
LEARNS = ("learning", "overfitting")  # the regimes that learn the task
# the ranges over which the sensitivity analysis moves each threshold that decides whether a configuration learns
SENSITIVITY = {"fail_margin": (0.05, 0.1, 0.15, 0.2, 0.3), "max_failed": (0.0, 0.1, 0.2, 0.3, 0.4),
               "max_std": (0.005, 0.01, 0.02, 0.03, 0.05), "min_level": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)}


@dataclass(frozen=True)
class Thresholds:
    fail_margin: float = THRESHOLDS["fail_margin"].default
    max_failed: float = THRESHOLDS["max_failed"].default
    max_std: float = THRESHOLDS["max_std"].default
    max_upturn: float = THRESHOLDS["max_upturn"].default
    max_gap: float = THRESHOLDS["max_gap"].default
    min_level: float = THRESHOLDS["min_level"].default

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


def minimal_params(features: pd.DataFrame, th: Thresholds = Thresholds(), n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Per dataset and family: the smallest parameter count from which every larger configuration learns the task,
    with a bootstrap interval (seeds resampled with replacement within each configuration, configurations
    reclassified; the plateau is held at its point estimate). ``bound`` says how to read it: ``exact``; ``at most``
    when the family's smallest configuration already learns (the true threshold lies at or below the grid);
    ``not reached`` (NaN) when even its largest does not."""
    rows = []
    for (dataset, family), params, point, estimates in _minimal(features, th, n_boot, seed):
        beyond = np.nan_to_num(estimates, nan=np.inf)  # a draw that never learns: beyond the grid, not dropped
        lo, hi = np.quantile(beyond, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf") if n_boot \
            else (np.nan, np.nan)
        estimate = _threshold(params, np.isin(point, LEARNS))
        bound = "not reached" if np.isnan(estimate) else "at most" if estimate == params[0] else "exact"
        below = params[params < estimate].max() if bound == "exact" else np.nan  # does not learn, by definition
        rows.append({"dataset": dataset, "family": family, "min_params": estimate, "bound": bound,
                     "next_smaller": below, "ci_low": lo, "ci_high": hi,
                     "not_reached": float(np.isnan(estimates).mean()) if n_boot else np.nan,
                     "smallest": params[0], "largest": params[-1], "configs": len(params), "n_boot": n_boot})
    return pd.DataFrame(rows)


def minimal_in_words(minimal: pd.DataFrame) -> str:
    """One line per family of ``minimal_params``, worded by its bound; an interval that the grid pins to one point
    is said in words (``common.between``), with the grid's next smaller configuration."""
    lines = []
    for r in minimal.itertuples():
        name = models.family(r.family).title
        if r.bound == "not reached":
            lines.append(f"- **{name}**: not reached within the grid: even its largest configuration "
                         f"({r.largest:,.0f} parameters) does not learn the task reliably")
        elif r.bound == "at most":
            lines.append(f"- **{name}**: at most {r.min_params:,.0f} parameters: every {name} in the grid learns the "
                         f"task, its smallest included, so the true threshold lies at or below it")
        else:
            high = "beyond the grid" if np.isinf(r.ci_high) else f"{r.ci_high:,.0f}"
            pinned = r.ci_low == r.ci_high == r.min_params
            lines.append(f"- **{name}**: {r.min_params:,.0f} parameters ({between(f'{r.ci_low:,.0f}', high)})"
                         + (f"; the grid's next smaller {name} ({r.next_smaller:,.0f}) does not learn the task "
                            f"reliably, so the true threshold lies between the two" if pinned else ""))
    return "\n".join(lines)


def minimal_draws(features: pd.DataFrame, th: Thresholds = Thresholds(), n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """The bootstrap draws behind ``minimal_params`` (the same draws for the same seed), one row per draw: what
    the findings compare across datasets. NaN where a draw does not reach the threshold within the grid."""
    frames = [pd.DataFrame({"dataset": d, "family": f, "draw": np.arange(len(e)), "min_params": e,
                            "smallest": params[0]})
              for (d, f), params, _, e in _minimal(features, th, n_boot, seed)]
    return pd.concat(frames, ignore_index=True)


def sensitivity(features: pd.DataFrame, ranges: dict = SENSITIVITY, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """How the minimal-parameter estimate of each dataset and family moves as each threshold that decides whether a
    configuration learns is varied over its range (``SENSITIVITY``), the others held at ``th``."""
    rows = []
    for name, values in ranges.items():
        for value in values:
            moved = Thresholds(**{**asdict(th), name: value})
            m = minimal_params(mark(features, moved), moved, n_boot=0)
            rows.append(m[["dataset", "family", "min_params", "bound", "smallest", "largest"]].assign(
                threshold=name, value=value, default=getattr(th, name)))
    return pd.concat(rows, ignore_index=True)


def _minimal(features, th, n_boot, seed):
    """Per dataset and family: (key, params ascending, point regimes, bootstrap threshold estimates)."""
    rng = np.random.default_rng(seed)
    for key, f in features.groupby(["dataset", "family"], sort=True):
        groups = sorted(((int(c.n_params.iloc[0]), c) for _, c in f.groupby("config_id")), key=lambda pc: pc[0])
        params = np.array([p for p, _ in groups])
        point = classify(*np.array([_stats(c) for _, c in groups]).T, th)
        if n_boot:
            boot = np.stack([classify(*_boot_stats(c, n_boot, rng), th) for _, c in groups], axis=1)  # (B, configs)
            estimates = np.array([_threshold(params, np.isin(r, LEARNS)) for r in boot])
        else:
            estimates = np.array([])
        yield key, params, point, estimates


def _stats(c: pd.DataFrame):
    acc = c.test_acc
    return (np.mean(c.failed), np.std(acc, ddof=1) if len(acc) > 1 else np.nan, np.mean(c.below_level),
            np.nanmean(c.gap), np.nanmean(c.upturn))


def _boot_stats(c: pd.DataFrame, n_boot: int, rng):
    idx = rng.integers(0, len(c), size=(n_boot, len(c)))
    pick = lambda col: c[col].to_numpy(dtype=float)[idx]  # noqa: E731
    acc = pick("test_acc")
    std = acc.std(axis=1, ddof=1) if len(c) > 1 else np.full(n_boot, np.nan)
    with np.errstate(all="ignore"):
        return (pick("failed").mean(1), std, pick("below_level").mean(1), np.nanmean(pick("gap"), 1),
                np.nanmean(pick("upturn"), 1))


def _threshold(params: np.ndarray, stable: np.ndarray) -> float:
    """Smallest params whose configuration and every larger one learn (params sorted ascending); NaN if the
    largest does not."""
    if not stable[-1]:
        return np.nan
    unstable_at = np.flatnonzero(~stable)
    return float(params[unstable_at[-1] + 1] if len(unstable_at) else params[0])


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


def seed_runs(configs: pd.DataFrame, features: pd.DataFrame, seeds: int = 3) -> pd.DataFrame:
    """``configs`` with one row per run of their ``seeds`` lowest seeds (``seed`` and ``run_id`` added)."""
    runs = features.sort_values("seed").groupby("config_id").head(seeds)[["config_id", "seed", "run_id"]]
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
