# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reproducing this book
#
# Everything in this book is computed by the code in `minarch_core`, called from the notebooks in `notebooks/`,
# executed by papermill and compiled by Jupyter Book. This page records what built the copy you are reading.

# %% tags=["parameters"]
build_info = "book/build-info.json"
benchmark = "benchmarks/latest.txt"  # what `make benchmark` last printed
results = None  # the run store (default: MINARCH_RESULTS or ./results)

# %%
import json
import os
import platform
from importlib.metadata import version

import pandas as pd
import torch
from IPython.display import Markdown

from minarch_core.book import chapter
from minarch_core.engine import profiles

ch = chapter.open_chapter(**chapter.given("reproducing", globals()))
info = json.load(open(ch.values["build_info"]))
Markdown(f"Built from commit `{info['commit']}` with profile **`{info['profile']}`** on "
         f"{', '.join(info['datasets'])}, on {info['started']}; executing the notebooks took "
         f"**{info['seconds'] / 60:.1f} minutes** on {info['machine']} (runs the store already held were read, "
         "not trained again).")

# %% [markdown]
# What the runs behind this book cost to train, read from the run store whatever build trained them: each run
# records its own training time (for seed-batched runs, the batch's time divided by its seeds), so the sum is the
# compute of a fresh build on this store's machine; with `workers` processes the wall time is roughly the sum
# divided by the workers.

# %%
prof = profiles.get(info["profile"])
cost = pd.concat([ch.store.table(configs=prof.configs(d)) for d in info["datasets"]], ignore_index=True)
cost = (cost.groupby(["dataset", "family"]).agg(runs=("run_id", "size"), train_minutes=("time_s", "sum"))
        .assign(train_minutes=lambda d: (d.train_minutes / 60).round(1)).reset_index())
Markdown(f"{cost.runs.sum():,d} runs, **{cost.train_minutes.sum():.0f} minutes** of training in all:")

# %%
cost

# %% [markdown]
# ## Commands
#
# ```bash
# make book                                   # set up .venv, run every chapter with papermill, build the HTML
# make book PROFILE=smoke DATASETS=mnist      # a quick look: one dataset, the CI profile
# make test                                   # the test suite (what CI runs)
# .venv/bin/minarch chapter pruning --dataset cifar10 --profile quick   # re-run one chapter
# .venv/bin/papermill notebooks/pruning.ipynb out.ipynb -p dataset cifar10 -p profile quick   # the same, by hand
# ```
#
# Executed notebooks land in `book/<dataset>/`, figures as SVG and PNG in `book/figures/`, the HTML in
# `_build/html`. Runs live in the store (`results/` or `MINARCH_RESULTS`); a rebuild trains only what is missing.

# %%
pd.DataFrame(info["notebooks"]).assign(minutes=lambda d: (d.seconds / 60).round(2)).drop(columns="seconds")

# %%
packages = ["torch", "torchvision", "numpy", "pandas", "scipy", "altair", "papermill", "jupytext", "jupyter-book"]
pd.DataFrame({"package": packages + ["python"], "version": [version(p) for p in packages] + [platform.python_version()]})

# %%
Markdown(f"Torch runs {torch.get_num_threads()} threads here; CUDA {'is' if torch.cuda.is_available() else 'is not'} "
         "available. Every package version is pinned in `constraints.txt`.")

# %% [markdown]
# ## Speed
#
# `make benchmark` (`benchmarks/speed.py`) times this project's trainer against the textbook PyTorch loop
# (a torchvision-style dataset of PIL images, `ToTensor`, `DataLoader`, batch 128, one seed at a time) on the same
# models, data and epochs; times seed batching (30 seeds stacked vs one at a time); measures the training FLOP/s of
# the largest DNN against a large `torch.mm` on the same machine; and projects the quick and paper sweeps from
# those measurements. Its last output, as it printed it, including the machine it ran on:

# %%
benchmark = ch.values["benchmark"]
print(open(benchmark).read() if os.path.exists(benchmark) else f"{benchmark} is missing: run make benchmark")

