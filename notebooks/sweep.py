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
# # Design sweep
#
# How does accuracy grow with the number of learnable parameters, and does the *shape* of a network matter once
# its size is fixed? This page answers both for one dataset: it trains every configuration of the profile's grids,
# each over several seeds, and plots accuracy against size. Phase 1 is the paper's DNN topology sweep (1 to 4
# hidden layers whose widths increase, decrease or stay equal from layer to layer); Phase 2 compares square DNNs,
# one-convolution CNNs and small Vision Transformers, and, beyond the paper, two hybrids of them: a convolutional
# stem feeding an MLP (Conv+MLP) or attention (Conv+ViT). The [method chapter](../method.ipynb) defines every term
# and setting. Runs already in the store are reused, so executing this chapter again trains nothing.

# %% tags=["parameters"]
dataset = "mnist"
profile = "quick"
seeds = None
epochs = None
train_per_class = None
device = "auto"
results = None
data = None
workers = 1
renderer = "default"
figures = None

# %%
from IPython.display import Markdown, display

from minarch_core.analyses import findings, regimes
from minarch_core.book import chapter, plots, tables
from minarch_core.engine import sweep

ch = chapter.from_notebook("sweep", globals())
runs = ch.sweep()
Markdown(sweep.in_words(runs, ch.study, ch.title))

# %% [markdown]
# ## Phase 1: shape at matched size
#
# Each point is one configuration: its test accuracy (circles) and train accuracy (squares), averaged over seeds,
# with the range of test accuracy over seeds as a vertical bar. Click a shape in the legend to single it out.

# %%
configs = ch.ask("configurations")
ch.figure(plots.phase1(configs), "phase1")

# %%
spread = regimes.shape_spread(configs)
display(Markdown(findings.shape_in_words(spread)), Markdown(findings.said(ch.ask("verdicts"), "sweep", ch.title)))

# %%
ch.table("shape_spread", spread, {
    "params_min": ("from parameters", tables.COUNT), "params_max": ("to parameters", tables.COUNT),
    "configs": ("configurations", None), "shapes": ("shapes", None), "depths": ("depths", None),
    "acc_min": ("lowest accuracy", tables.ACCURACY), "acc_max": ("highest accuracy", tables.ACCURACY),
    "spread": ("spread", tables.ACCURACY)},
    "Accuracy spread across shapes and depths, per half-decade of parameter count")

# %% [markdown]
# ## Phase 2: every family
#
# The same view for the Phase-2 families, one panel each: mean test (circles) and train (squares) accuracy over
# seeds, with the range of test accuracy over seeds; colour gives the depth (hidden layers, the CNN's and the
# Conv+MLP's one convolution, the encoder blocks of the ViT and the Conv+ViT). The [regimes chapter](regimes.ipynb) sorts these configurations into
# regimes.

# %%
ch.figure(plots.families(configs), "families")
