"""What every analysis table shares: the columns that say which run it measured, and each row's chance level."""
from __future__ import annotations

import pandas as pd

from ..engine import data, models, train
from ..engine.store import Run, row


def info() -> tuple[str, ...]:
    """The columns that say which run a row measured, and its architecture."""
    return ("dataset", "seed", "config_id", *models.arch_columns())


def run_columns(run: Run) -> dict:
    """The ``info`` columns of one run."""
    return {k: v for k, v in row(run).items() if k in info()}


def info_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``info`` columns of the runs in a curve table, one row per run id (to join onto per-run results)."""
    return frame.drop_duplicates("run_id").set_index("run_id")[[k for k in info() if k in frame]]


def score(rows: list[dict], model, states: list[dict], splits: dict, loss_fn) -> list[dict]:
    """Fill ``rows`` (one per weight set in ``states``) with each variant's ``<name>_loss`` and ``<name>_acc`` on
    each split of ``splits`` (name -> ``data.Split``), the variants of ``model`` evaluated by
    ``train.evaluate_states``."""
    for name, split in splits.items():
        for r, (loss, acc) in zip(rows, train.evaluate_states(model, states, split, loss_fn)):
            r[f"{name}_loss"], r[f"{name}_acc"] = loss, acc
    return rows


def monitor_test(dataset) -> data.Split:
    """The test split's monitor subset (``train.MONITOR_PER_CLASS`` images per class, the images the histories' test
    rows are measured on): what the frontier measures every variant on, keeping the whole test split for the
    variants the book reports."""
    return dataset.monitor(train.MONITOR_PER_CLASS).test


def square(configs: pd.DataFrame) -> pd.DataFrame:
    """Without the Phase-1 networks whose widths vary (``shape`` other than equal); CNNs and ViTs have no shape."""
    return configs[configs["shape"].fillna("equal") == "equal"] if "shape" in configs else configs


def between(low: str, high: str) -> str:
    """'95% interval low to high' as a reader sees it; where the bootstrap draws pin it to one shown value (a
    coarse grid), that in words instead of 'from 80% to 80%'."""
    return f"95% interval {low} to {high}" if low != high else "the same in 95% of the bootstrap draws"


def chance(frame: pd.DataFrame) -> pd.Series:
    """The chance accuracy of each row's dataset (``DatasetSpec.chance``)."""
    return frame.dataset.map(lambda d: data.spec(d).chance)
