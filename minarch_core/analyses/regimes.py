"""Convergence regimes: which configurations are unstable, which learn, which overfit; and from how many learnable
parameters learning becomes reliable.

Everything here reads two tidy frames from the store (``Store.table`` and ``Store.histories``) and returns tidy
frames; nothing trains. The operational definitions are ours (the paper does not publish them) and every threshold
is a field of ``Thresholds``:

- A seed **failed** when it diverged or its final test accuracy is below chance + ``fail_margin``.
- A configuration is **unstable** when more than ``max_failed`` of its seeds failed, or the standard deviation of
  its seeds' final test accuracy exceeds ``max_std``: whether it learns depends on the seed.
- Otherwise it **overfits** when, averaged over seeds, the validation loss ends more than ``max_upturn`` (relative)
  above its minimum, or the train-test accuracy gap exceeds ``max_gap``.
- Otherwise it is **learning**.

The minimal number of learnable parameters of a family on a dataset is the smallest parameter count from which
every larger configuration is stable (learning or overfitting), with a bootstrap interval over seeds.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from ..engine import models
from ..engine.params import Param, check_fields
from .common import chance

REGIMES = ("unstable", "learning", "overfitting")


THRESHOLDS = {p.name: p for p in (
    Param("fail_margin", float, 0.10, "a seed failed below the dataset's chance + this accuracy", 0, 1),
    Param("max_failed", float, 0.10, "unstable above this fraction of failed seeds", 0, 1),
    Param("max_std", float, 0.02, "unstable above this spread (std) of final test accuracy over seeds", 0, 1),
    Param("max_upturn", float, 0.10, "overfitting above this relative rise of validation loss after its minimum",
          0, 100),
    Param("max_gap", float, 0.05, "overfitting above this train-test accuracy gap", 0, 1),
)}


@dataclass(frozen=True)
class Thresholds:
    fail_margin: float = THRESHOLDS["fail_margin"].default
    max_failed: float = THRESHOLDS["max_failed"].default
    max_std: float = THRESHOLDS["max_std"].default
    max_upturn: float = THRESHOLDS["max_upturn"].default
    max_gap: float = THRESHOLDS["max_gap"].default

    def __post_init__(self):
        check_fields(self, THRESHOLDS, "regime threshold")


def run_features(table: pd.DataFrame, histories: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per run: its table row plus best test accuracy, validation-loss minimum and upturn, failed flag."""
    h = histories[histories.epoch > 0]
    per_run = h.groupby("run_id").agg(best_test_acc=("test_acc", "max"), min_val_loss=("val_loss", "min"))
    per_run["min_val_epoch"] = h.loc[h.groupby("run_id").val_loss.idxmin().dropna(), ["run_id", "epoch"]] \
        .set_index("run_id").epoch
    out = table.join(per_run, on="run_id")
    out["gap"] = out.train_acc - out.test_acc
    out["upturn"] = (out.val_loss - out.min_val_loss) / out.min_val_loss
    out["failed"] = (out.status == "diverged") | ~(out.test_acc >= chance(out) + th.fail_margin)
    return out


def classify(failed_frac, test_std, gap, upturn, th: Thresholds = Thresholds()):
    """The regime of each configuration from its seed statistics (arrays or scalars)."""
    failed_frac, test_std, gap, upturn = map(np.asarray, (failed_frac, test_std, gap, upturn))
    unstable = (failed_frac > th.max_failed) | (np.nan_to_num(test_std) > th.max_std)
    overfitting = (np.nan_to_num(upturn) > th.max_upturn) | (np.nan_to_num(gap) > th.max_gap)
    return np.where(unstable, "unstable", np.where(overfitting, "overfitting", "learning"))


GROUP = ["dataset", "family", "config_id"]


def configurations(features: pd.DataFrame, th: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per configuration (its seeds pooled): accuracy level and spread, gap, failures, trend, regime."""
    g = features.groupby(GROUP, sort=False)
    q = g.test_acc.quantile([0.1, 0.5, 0.9]).unstack()
    out = pd.DataFrame({
        **{k: g[k].first() for k in models.arch_columns() if k != "family" and k in features},
        "seeds": g.size(),
        "test_mean": g.test_acc.mean(), "test_std": g.test_acc.std(), "test_min": g.test_acc.min(),
        "test_max": g.test_acc.max(), "test_q10": q[0.1], "test_q50": q[0.5], "test_q90": q[0.9],
        "best_test_mean": g.best_test_acc.mean(), "train_mean": g.train_acc.mean(), "gap": g.gap.mean(),
        "failed_frac": g.failed.mean(), "diverged_frac": g.status.agg(lambda s: (s == "diverged").mean()),
        "upturn": g.upturn.mean(), "min_val_epoch": g.min_val_epoch.median(),
    })
    out["regime"] = classify(out.failed_frac, out.test_std, out.gap, out.upturn, th)
    return out.reset_index().sort_values(["dataset", "family", "n_params"], ignore_index=True)


def minimal_params(features: pd.DataFrame, th: Thresholds = Thresholds(), n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Per dataset and family: the smallest parameter count from which every larger configuration is stable, with a
    bootstrap interval (seeds resampled with replacement within each configuration, configurations reclassified).
    NaN where even the largest configuration is unstable."""
    rng = np.random.default_rng(seed)
    rows = []
    for (dataset, family), f in features.groupby(["dataset", "family"], sort=True):
        groups = [(int(c.n_params.iloc[0]), c) for _, c in f.groupby("config_id")]
        groups.sort(key=lambda pc: pc[0])
        params = np.array([p for p, _ in groups])
        point = classify(*np.array([_stats(c.failed, c.test_acc, c.gap, c.upturn) for _, c in groups]).T, th)
        boot = np.stack([classify(*_boot_stats(c, n_boot, rng), th) for _, c in groups], axis=1)  # (B, configs)
        estimates = np.array([_threshold(params, r != "unstable") for r in boot])
        lo, hi = np.nanquantile(estimates, [(1 - level) / 2, (1 + level) / 2]) if np.isfinite(estimates).any() \
            else (np.nan, np.nan)
        rows.append({"dataset": dataset, "family": family, "min_params": _threshold(params, point != "unstable"),
                     "ci_low": lo, "ci_high": hi, "not_reached": float(np.isnan(estimates).mean()),
                     "configs": len(groups), "n_boot": n_boot})
    return pd.DataFrame(rows)


def _stats(failed, acc, gap, upturn):
    return (np.mean(failed), np.std(acc, ddof=1) if len(acc) > 1 else np.nan, np.nanmean(gap), np.nanmean(upturn))


def _boot_stats(c: pd.DataFrame, n_boot: int, rng):
    idx = rng.integers(0, len(c), size=(n_boot, len(c)))
    pick = lambda col: c[col].to_numpy(dtype=float)[idx]  # noqa: E731
    acc = pick("test_acc")
    std = acc.std(axis=1, ddof=1) if len(c) > 1 else np.full(n_boot, np.nan)
    with np.errstate(all="ignore"):
        return pick("failed").mean(1), std, np.nanmean(pick("gap"), 1), np.nanmean(pick("upturn"), 1)


def _threshold(params: np.ndarray, stable: np.ndarray) -> float:
    """Smallest params whose configuration and every larger one are stable (params sorted ascending)."""
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
    """Phase 1: for DNN configurations binned by parameter count, how far mean test accuracy differs across shapes
    and depths in each bin (max - min, and std): small spreads at large sizes are the paper's shape invariance."""
    d = configs[configs.family == "dnn"].copy()
    d["bin"] = np.floor(np.log10(d.n_params) * bins_per_decade) / bins_per_decade
    g = d.groupby(["dataset", "bin"])
    out = g.agg(configs=("config_id", "size"), shapes=("shape", "nunique"), depths=("depth", "nunique"),
                params_min=("n_params", "min"), params_max=("n_params", "max"),
                acc_min=("test_mean", "min"), acc_max=("test_mean", "max"), acc_std=("test_mean", "std"))
    out["spread"] = out.acc_max - out.acc_min
    return out.reset_index()


def representatives(configs: pd.DataFrame, features: pd.DataFrame, per_group: int = 3) -> pd.DataFrame:
    """The models that the pruning and quantization chapters study, chosen by rule, never by hand.

    For each dataset, family and depth (DNNs: square networks only), among the stable configurations (learning or
    overfitting) ordered by parameter count: the smallest, the largest, and between them those nearest to evenly
    spaced ranks, ``per_group`` in all; for each, the run of its lowest seed.
    """
    stable = configs[configs.regime != "unstable"]
    if "shape" in stable:  # families without shapes (NaN) count as square
        stable = stable[stable["shape"].fillna("equal") == "equal"]
    first_run = features.sort_values("seed").drop_duplicates("config_id").set_index("config_id").run_id
    picks = []
    for _, g in stable.sort_values("n_params").groupby(["dataset", "family", "depth"], sort=True):
        ranks = np.unique(np.round(np.linspace(0, len(g) - 1, min(per_group, len(g)))).astype(int))
        picks.append(g.iloc[ranks].assign(size_rank=range(len(ranks))))
    out = pd.concat(picks, ignore_index=True) if picks else stable.head(0).assign(size_rank=[])
    return out.assign(run_id=out.config_id.map(first_run))


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
