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
from IPython.display import Markdown

from minarch_core.analyses import pruning
from minarch_core.book import chapter, plots, tables
from minarch_core.engine import models

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
g = redundancy[redundancy.scope == "global"].groupby(["config_id", "model", "family", "depth"]).redundancy.mean()
g = g.reset_index()
by_depth = g[g.family.isin(models.shaped())].groupby(["family", "depth"]).redundancy.mean()
best = g.loc[g.redundancy.idxmax()]
layered = "; ".join(f"the representative {models.family(f).title}s keep their accuracy up to a mean sparsity of "
                    + ", ".join(f"**{v:.0%}** at depth {d}" for d, v in by_depth[f].items())
                    for f in by_depth.index.unique(0))
Markdown("Global pruning, averaged over seeds" + (f": {layered}." if layered else ".")
         + f" The most redundant model, {best.model}, tolerates **{best.redundancy:.0%}** sparsity; "
         f"{(g.redundancy >= 0.6).sum()} of {len(g)} models tolerate 60 % or more. These representatives differ in "
         f"size as well as depth; the next section compares depths at matched size.")

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
ch.figure(plots.matched_depth(matched), "matched_depth") if len(matched) else Markdown(
    "No size band holds two depths that learn the task: the grid cannot compare depths at matched size here.")

# %%
Markdown(pruning.depth_in_words(matched)) if len(matched) else None

# %% [markdown]
# Pruning goes through phases: a **plateau** where accuracy stays within the tolerance of dense, a **decline**, and a
# **collapse** to near chance. How many models are in each phase at each sparsity:

# %%
phase_counts = curves.assign(phase=pruning.phases(curves, ch.study.compression.tolerance)).pivot_table(
    index="sparsity", columns="phase", values="run_id", aggfunc="count", fill_value=0)
phase_counts = phase_counts.reindex(columns=["plateau", "decline", "collapse"], fill_value=0).reset_index()
ch.table("phases", phase_counts, {"sparsity": ("sparsity", "{:.0%}"), "plateau": ("plateau", None),
                                  "decline": ("decline", None), "collapse": ("collapse", None)},
         "Models per pruning phase (both scopes)", fold_after=20)

# %%
ch.table("redundancy", redundancy, {
    "model": ("model", None), "scope": ("scope", None), "n_params": ("parameters", tables.COUNT),
    "dense_acc": ("dense accuracy", tables.ACCURACY), "redundancy": ("redundancy", tables.PERCENT),
    "collapse_at": ("collapses at", tables.PERCENT)}, "Redundancy of every representative model")
