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
# its size is fixed? This chapter trains every configuration of the profile's grids (each over several seeds):
# the paper's Phase 1 (DNNs of 1 to 4 hidden layers whose widths increase, decrease or stay equal from layer to
# layer) and Phase 2 (square DNNs, one-convolution CNNs and small ViTs). Runs already in the store are reused,
# so executing this chapter again trains nothing.

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

from minarch_core.analyses import regimes
from minarch_core.book import chapter, plots
from minarch_core.engine import sweep

ch = chapter.open_chapter(**chapter.given("sweep", globals()))
runs = ch.sweep()
p = ch.study
Markdown(f"The `{p.name}` profile trains **{len(runs)} runs** on **{dataset}**: {p.seeds} seeds, {p.epochs} epochs, "
         f"{'the whole training split' if p.train_per_class is None else f'{p.train_per_class} images per class'}; "
         f"{runs.config_id.nunique()} configurations from {runs.n_params.min():,} to {runs.n_params.max():,} "
         f"learnable parameters; {int((runs.status == 'diverged').sum())} runs diverged.")

# %% [markdown]
# ## Phase 1: shape at matched size
#
# Each point is one configuration: its test accuracy (circles) and train accuracy (squares), averaged over seeds,
# with the range of test accuracy over seeds as a vertical bar. Click a shape in the legend to single it out.

# %%
configs = regimes.configurations(ch.features())
ch.save("configurations", configs)
ch.figure(plots.phase1(configs), "phase1")

# %%
spread = regimes.shape_spread(configs)
small, large = spread[spread.params_max < 1e4], spread[spread.params_min >= 1e4]
Markdown(f"Below 10,000 parameters, configurations of similar size differ by up to "
         f"**{small.spread.max():.1%}** in test accuracy (median {small.spread.median():.1%} per half-decade "
         f"bin); from 10,000 parameters on by at most **{large.spread.max():.1%}** (median "
         f"{large.spread.median():.1%}). Shape and depth matter for tiny networks and hardly at all for larger ones.")

# %%
spread.round(4)

# %% [markdown]
# ## Phase 2: square DNNs, CNNs and ViTs
#
# Seeds pooled: one row per configuration, sorted by family and size.

# %%
sweep.overview(runs).round(4)
