"""Choosing on the frontier: the variants' seeds pooled (``summarise``), the Pareto sets, and ``recommend``, the
smallest variant that reaches an accuracy with a stated confidence (chosen on validation, reported on test)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ...engine import data
from ...engine.errors import ConfigError
from ...engine.params import Param
from .. import recovery
from ..common import chance
from ..regimes import THRESHOLDS
from .answer import Answer

ASK = {
    "min_accuracy": Param("min_accuracy", float, None, "the accuracy to reach (a fraction)", 0.0, 1.0),
    "confidence": Param("confidence", float, 0.9, "one-sided confidence over seeds", 0.5, 0.999),
    "max_bytes": Param("max_bytes", int, None, "largest stored size in bytes", 1, 10**12, optional=True),
}


KEYS = ["dataset", "config_id", "method", "sparsity", "precision"]


def summarise(table: pd.DataFrame, confidence: float = ASK["confidence"].default) -> pd.DataFrame:
    """One row per variant of a configuration, its seeds pooled: bytes (the largest seed's), the mean and the
    one-sided lower bound of validation accuracy, and the test split's mean and two-sided interval at
    ``confidence`` (Student t over seeds; NaN bounds with a single seed, NaN throughout where ``complete`` has not
    measured it). ``finished``: measured on the whole validation split (not stopped by racing); ``val_images``, on
    how many of its images (the fewest of its seeds), when the table says."""
    ASK["confidence"].check(confidence)
    arch = [c for c in ("family", "model", "depth", "width", "n_params") if c in table]
    finished = table["finished"].astype("boolean").fillna(True) if "finished" in table else True
    g = table.assign(finished=finished).groupby(KEYS, sort=False)
    setting = [c for c in ("scheme", "granularity") if c in table]
    raced = {"val_images": ("val_images", "min")} if "val_images" in table else {}
    out = g.agg(**{c: (c, "first") for c in arch + setting}, **raced, bits=("bits", "first"),
                achieved=("achieved", "mean"),
                size_bytes=("size_bytes", "max"), dense_bytes=("dense_bytes", "first"), seeds=("run_id", "count"),
                finished=("finished", "all"), val_mean=("val_acc", "mean"), val_sd=("val_acc", "std"),
                test_mean=("test_acc", "mean"), test_sd=("test_acc", "std")).reset_index()
    one = stats.t.ppf(confidence, out.seeds - 1) / np.sqrt(out.seeds)  # NaN for one seed
    two = stats.t.ppf((1 + confidence) / 2, out.seeds - 1) / np.sqrt(out.seeds)
    out["val_low"] = out.val_mean - one * out.val_sd
    out["test_low"] = out.test_mean - two * out.test_sd
    out["test_high"] = out.test_mean + two * out.test_sd
    out["ratio"] = out.dense_bytes / out.size_bytes
    return out.sort_values(["dataset", "size_bytes"], ignore_index=True)



def pareto(summary: pd.DataFrame, by=("dataset", "family"), accuracy: str = "val_mean") -> pd.DataFrame:
    """The variants no other variant beats (smaller or equal bytes with higher ``accuracy``), within each group of
    ``by``: the frontier, smallest first. Chosen on validation accuracy by default, so that the test accuracy the
    book reports for its points played no part in choosing them. A variant whose accuracy is below its dataset's
    chance + the regimes' ``fail_margin`` has learned nothing of the task (a seed that ends there failed) and is no
    point of the frontier, however small. Variants that racing stopped are beaten by a no-larger one: none is."""
    learned = summary[(summary[accuracy] >= chance(summary) + THRESHOLDS["fail_margin"].default)
                      & summary.get("finished", True)]
    keep = [i for _, g in learned.groupby(list(by), sort=True)
            for i in g.index[front(g.size_bytes.to_numpy(), g[accuracy].to_numpy(float))]]
    return summary.loc[keep].sort_values([*by, "size_bytes"], ignore_index=True)


def front(size, accuracy) -> np.ndarray:
    """Which points no other beats (a smaller or equal ``size`` with a higher ``accuracy``): a boolean mask. Of
    points of equal size, only the most accurate can be on it; of equal size and accuracy, the first."""
    order = np.lexsort((-accuracy, size))  # smallest first, the most accurate first among equal sizes
    ranked = accuracy[order]
    best = np.concatenate([[-np.inf], np.maximum.accumulate(ranked)[:-1]])
    mask = np.zeros(len(order), dtype=bool)
    mask[order] = ranked > best
    return mask



def variant_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's variant as one string, ``config_id|method|sparsity|precision``: how the page names an answer."""
    return (frame.config_id + "|" + frame.method + "|" + frame.sparsity.map(str) + "|"
            + frame.precision.map(str))


def candidates(summary: pd.DataFrame) -> pd.DataFrame:
    """The variants ``recommend`` chooses among (``summarise``'s rows that racing did not stop: a no-larger variant
    beats each one it stopped); the smallest-model chapter's question chart reads the same rows."""
    return summary[summary.finished]


def recommend(table: pd.DataFrame, min_accuracy: float, family: str | None = None, max_bytes: int | None = None,
              confidence: float = ASK["confidence"].default) -> Answer:
    """The smallest variant whose validation accuracy reaches ``min_accuracy`` with ``confidence`` (its one-sided
    lower bound over seeds), within ``family`` and ``max_bytes``; else the closest miss (the highest lower bound).
    ``table`` holds one dataset's ``variants`` (one row per seed)."""
    ASK["min_accuracy"].check(min_accuracy)
    ASK["max_bytes"].check(max_bytes)
    if table.empty:
        raise ConfigError("the compression frontier is empty: no configuration of the study learns the task; sweep "
                          "larger models (minarch sweep --profile paper)")
    seeds = table.groupby(["config_id", "method", "sparsity", "precision"]).run_id.nunique()
    if seeds.max() < 2:
        raise ConfigError(f"the frontier holds {seeds.max()} seed per configuration: a confidence bound needs at "
                          f"least 2; build it from a study with --seeds 2 or more")
    summary = summarise(table, confidence)
    pool = candidates(summary)
    if family is not None:
        if family not in set(summary.family):
            raise ConfigError(f"family {family!r} has no stable model in the frontier: choose one of "
                              f"{sorted(set(summary.family))}")
        pool = pool[pool.family == family]
    if max_bytes is not None:
        pool = pool[pool.size_bytes <= max_bytes]
        if pool.empty:
            raise ConfigError(f"no variant is as small as max_bytes={max_bytes:,}: the smallest stored has "
                              f"{int(summary.size_bytes.min()):,} bytes")
    met = pool[pool.val_low >= min_accuracy]
    if len(met):
        best = met.sort_values(["size_bytes", "val_low"], ascending=[True, False]).iloc[0]
        return Answer(True, best, min_accuracy, confidence, len(pool), family, max_bytes)
    closest = pool.sort_values(["val_low", "size_bytes"], ascending=[False, True]).iloc[0]
    return Answer(False, closest, min_accuracy, confidence, len(pool), family, max_bytes)



def targets(summary: pd.DataFrame, dataset: str, levels=(0.5, 0.75, 0.9, 0.97, 1.0)) -> list[float]:
    """Round accuracy targets spread between chance and the best variant's mean validation accuracy (whole
    percents, rounded down): ``levels`` of the way from one to the other."""
    chance, best = data.spec(dataset).chance, float(summary.val_mean.max())
    return sorted({float(np.floor((chance + k * (best - chance)) * 100 + 1e-6)) / 100 for k in levels})



def answers(table: pd.DataFrame, goals, confidence: float = ASK["confidence"].default) -> pd.DataFrame:
    """``recommend`` for each target in ``goals``: one row per target, the chosen variant or the closest miss."""
    rows = []
    for goal in goals:
        answer = recommend(table, goal, confidence=confidence)
        rows.append({"target": goal, "met": "yes" if answer.met else "no (closest)", **answer.row.to_dict()})
    return pd.DataFrame(rows)



def reported(table: pd.DataFrame) -> pd.DataFrame:
    """The variants (``KEYS``) whose whole-test accuracy the book reports: every family's Pareto set (the frontier
    across families is part of it), the answers to each dataset's ``targets``, and the post-training side of the
    recovery comparison (``recovery.compared``). All are chosen on validation, so none depends on the test split."""
    summary = summarise(table)
    parts = [pareto(summary), recovery.compared(summary)]
    for dataset, rows in table.groupby("dataset"):
        parts.append(answers(rows, targets(summary[summary.dataset == dataset], dataset)))
    return pd.concat([p[KEYS] for p in parts], ignore_index=True).drop_duplicates(ignore_index=True)



def owners(table: pd.DataFrame, configs: int = 4) -> pd.DataFrame:
    """The post-training rows of the ``configs`` configurations that own the most points of the dataset's frontier
    (``pareto`` over all families, chosen on validation): the models whose recovery could move it."""
    front = pareto(summarise(table), by=("dataset",))
    return table[table.config_id.isin(front.config_id.value_counts().index[:configs])]



def near_best(front: pd.DataFrame, within: float = 0.01) -> pd.DataFrame:
    """Per dataset, the smallest variant of its frontier (``pareto(..., by=("dataset",))``) whose mean validation
    accuracy is within ``within`` of the frontier's best (chosen on validation; reported with its test accuracy and
    the best variant's): what near-best accuracy costs in bytes."""
    if not 0 <= within <= 1:
        raise ConfigError(f"within must be a fraction in 0..1, got {within!r}")
    rows = []
    for _, f in front.groupby("dataset", sort=False):
        top = f.loc[f.val_mean.idxmax()]
        pick = f[f.val_mean >= top.val_mean - within].sort_values("size_bytes").iloc[0]
        rows.append({**pick.to_dict(), "best": top.test_mean})
    return pd.DataFrame(rows)

