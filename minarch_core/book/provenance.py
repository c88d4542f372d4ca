"""What a book was built from and what it cost: the reproducing chapter's sentences and tables, read from the
build's record (``book/build-info.json``), the run store and the installed packages."""
from __future__ import annotations

import platform
from importlib.metadata import version

import pandas as pd
import torch

from ..engine import data, models, profiles
from ..engine.store import Store

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scipy", "altair", "papermill", "jupytext", "jupyter-book")


def study(info: dict) -> profiles.Profile:
    """The study a build record names: its profile with the overrides it was built with."""
    return profiles.study(info["profile"], **info.get("overrides", {}))


def built_in_words(info: dict) -> str:
    """The build in a sentence: commit, profile, datasets, when, how long, on what."""
    return (f"Built from commit `{info['commit']}` with profile **`{info['profile']}`** on "
            f"{', '.join(data.spec(d).title for d in info['datasets'])}, on {info['started']}; training and "
            f"executing the notebooks took **{info['seconds'] / 60:.1f} minutes** of wall time on {info['machine']}, "
            f"the chapters of {info.get('parallel', 1)} dataset(s) at a time (runs the store already held were read, "
            "not trained again).")


def training_cost(store: Store, info: dict) -> pd.DataFrame:
    """Per dataset and family of the build: its runs and the minutes they took to train, from each run's own
    record (its share of its bundle's time), whatever build trained them."""
    prof = study(info)
    runs = pd.concat([store.table(configs=prof.configs(d)) for d in info["datasets"]], ignore_index=True)
    return (runs.groupby(["dataset", "family"]).agg(runs=("run_id", "size"), train_minutes=("time_s", "sum"))
            .assign(train_minutes=lambda d: d.train_minutes / 60).reset_index())


def cost_in_words(cost: pd.DataFrame) -> str:
    """``training_cost`` summed, and what the hybrid families (beyond the paper) added to the paper's."""
    hybrid = cost.family.isin(models.hybrids())
    text = f"{cost.runs.sum():,d} runs, **{cost.train_minutes.sum():.0f} minutes** of training in all"
    if hybrid.any():
        added = cost[hybrid].train_minutes.sum()
        text += (f", of which the hybrid families (beyond the paper) took **{added:.1f} minutes**, "
                 f"{added / cost[~hybrid].train_minutes.sum():.0%} on top of the paper's families")
    return text + ":"


def chapter_times(info: dict) -> pd.DataFrame:
    """How long each step of the build took, in minutes (training and the tables as the dataset ``all``)."""
    return pd.DataFrame(info["notebooks"]).assign(minutes=lambda d: d.seconds / 60)


def versions() -> pd.DataFrame:
    """The installed versions of the packages the book's numbers depend on, and Python's."""
    return pd.DataFrame({"package": [*PACKAGES, "python"],
                         "version": [version(p) for p in PACKAGES] + [platform.python_version()]})


def machine_in_words() -> str:
    """What torch sees of this machine."""
    return (f"Torch runs {torch.get_num_threads()} threads here; CUDA "
            f"{'is' if torch.cuda.is_available() else 'is not'} available. Every package version is pinned in "
            f"`constraints.txt`.")
