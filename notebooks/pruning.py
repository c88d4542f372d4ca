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
# # Pruning
#
# How much of a trained network is redundant? This page removes the weights of smallest magnitude (L1 pruning,
# with `torch.nn.utils.prune`) from the representative models of one dataset, without retraining, at increasing
# sparsity, and measures test accuracy. *Global* pruning ranks all weights of the network together; *per-layer*
# pruning removes the same fraction from every layer. Biases are kept. The models are the representatives chosen
# by rule in the [regimes chapter](regimes.ipynb); the [method chapter](../method.ipynb) gives every setting.

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

from minarch_core.analyses import findings, pruning
from minarch_core.book import chapter, plots, tables

ch = chapter.from_notebook("pruning", globals())
curves = ch.ask("pruning")
ch.figure(plots.pruning_curves(curves), "pruning")

# %% [markdown]
# The redundancy of a model is the largest sparsity up to which every tested sparsity keeps test accuracy within
# one point of the dense model.

# %%
redundancy = ch.ask("redundancy")
ch.figure(plots.redundancy_bars(redundancy), "redundancy")

# %%
Markdown(pruning.redundancy_in_words(redundancy))

# %% [markdown]
# ## Depth at matched size
#
# Is a deeper network more resilient to pruning than a shallower one *of the same size*? Square DNNs that learn
# the task (depths 1, 2 and 4, and 3 from the Phase-1 shapes) are grouped into bands of about equal parameter count
# (within a factor 1.3), one network per depth and two depths or more per band, and every seed is pruned globally
# on a finer grid of sparsities than the curves above (the method chapter lists it). Each band gives a slope of
# redundancy against depth; their mean is the depth effect the findings test.

# %%
matched = ch.ask("matched_redundancy")
ch.figure(plots.matched_depth(matched), "matched_depth", empty="No figure: no size band holds two depths that learn "
          "the task.")

# %%
display(Markdown(pruning.depth_in_words(matched)), Markdown(findings.said(ch.ask("verdicts"), "pruning", ch.title)))

# %% [markdown]
# Pruning goes through phases: a **plateau** where accuracy stays within the tolerance of dense, a **decline**, and a
# **collapse** to near chance. How many models are in each phase at each sparsity:

# %%
ch.table("phases", pruning.phase_counts(curves, ch.study.compression.tolerance), {
    "sparsity": ("sparsity", "{:.0%}"), "plateau": ("plateau", None), "decline": ("decline", None),
    "collapse": ("collapse", None)},
         "Models per pruning phase (both scopes)", fold_after=20)

# %%
ch.table("redundancy", redundancy, {
    "model": ("model", None), "scope": ("scope", None), "n_params": ("parameters", tables.COUNT),
    "dense_acc": ("dense accuracy", tables.ACCURACY), "redundancy": ("redundancy", tables.PERCENT),
    "collapse_at": ("collapses at", tables.PERCENT)}, "Redundancy of every representative model")
