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
# # Convergence regimes
#
# Does a configuration learn the task reliably, learn only for some seeds, reliably learn too little, or learn and
# then overfit? The paper reports three regimes organised along the number of learnable parameters. Its
# operational definitions are unpublished; ours decide from the seeds of each configuration (the thresholds are in
# the table below and in the [method chapter](../method.ipynb)): **unstable** when seeds fail (stay near chance
# or diverge) or scatter; **underfitting** when the seeds agree but stay short of the task (below a stated
# fraction of the way from chance to the best accuracy of the family); **overfitting** when the validation loss
# climbs back after its minimum or train accuracy runs ahead of test accuracy; **learning** otherwise. Only
# learning and overfitting configurations learn the task. This page sorts one dataset's configurations into regimes, finds from how many
# parameters each family learns reliably, shows how each regime learns, and picks the models that the pruning and
# quantization chapters study.

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

ch = chapter.from_notebook("regimes", globals())
features, configs = ch.ask("runs"), ch.ask("configurations")
ch.table("thresholds", regimes.thresholds_table(), {"threshold": ("threshold", None), "value": ("value", "{:g}"),
                                                     "meaning": ("meaning", None)}, "The regime rule's thresholds")

# %%
display(ch.table("regime_counts", regimes.regime_counts(configs), None, f"Configurations per regime on {ch.title}"))
Markdown(findings.said(ch.ask("verdicts"), "regimes", ch.title))

# %% [markdown]
# ## The minimal number of learnable parameters
#
# Whether a network learns the task is a matter of chance near the threshold: some seeds do, some do not. So the
# minimal count of a family is read off a dose-response: each seed of a square configuration either learned the
# task or did not, a logistic curve of the probability of learning against log parameters is fitted to those
# outcomes, and the minimal count is where that probability reaches the level below (the dotted line). The interval
# is the profile likelihood's; between two grid points it spans the gap instead of settling on one of them (the
# [method chapter](../method.ipynb) says why). Square DNNs of every depth share one panel; the Phase-1 shapes are
# their own analysis in the [sweep chapter](sweep.ipynb). When no seed of a family fails, the grid cannot say how
# much smaller a network could be: the estimate is then an upper bound, marked "≤".

# %%
minimal = ch.ask("minimal")
ch.figure(plots.dose(regimes.outcomes(features), regimes.dose_curves(minimal), minimal), "dose")

# %% [markdown]
# ### Runs added where a minimal size was open
#
# After the grid, the study's design (the [method chapter](../method.ipynb) gives its budget) trained more runs
# where a family's minimal count was still uncertain: new knob values between two grid points inside the
# interval, and more seeds where the fitted probability of learning lies between the two levels the design names.
# These are ordinary runs of the study: every chapter reads them.

# %%
added = ch.designed()
ch.table("design", added, {
    "round": ("round", None), "family": ("family", None), "model": ("model", None),
    "n_params": ("parameters", tables.COUNT), "seeds": ("runs", None), "why": ("why", None)},
    f"Runs the design added on {ch.title}", empty="The design added no run on this dataset.")

# %% [markdown]
# The same minimal counts over the regime of every configuration (mean test accuracy; the dashed line and band are
# the minimal count and its interval):

# %%
ch.figure(plots.phase2(configs, minimal), "phase2")

# %%
Markdown(regimes.minimal_in_words(minimal, ch.title))

# %% [markdown]
# ### How much these numbers depend on our thresholds
#
# Each panel moves one threshold that the minimal count reads (what counts as failing, what counts as learning the
# task, and the probability of learning it is read at) over a stated range, the others at their defaults (dashed):
# a flat line is a conclusion that does not depend on that choice. The findings chapter decides each claim again
# under every one of these settings and says how often its verdict holds.

# %%
sensitivity = ch.ask("sensitivity")
ch.figure(plots.sensitivity(sensitivity), "sensitivity")

# %%
Markdown(regimes.sensitivity_in_words(sensitivity))

# %% [markdown]
# A smooth view of the same data: a logistic curve of mean test accuracy against log10(parameters) per family,
# and the parameter counts at which it has climbed 50 %, 90 % and 99 % of the way from its floor to its plateau.

# %%
plateau = ch.ask("plateau")
display(ch.table("plateau", plateau, {
    "family": ("family", None), "configs": ("configurations", None), "floor": ("floor", tables.ACCURACY),
    "plateau": ("plateau", tables.ACCURACY), "params_0.5": ("50 % at", tables.COUNT),
    "params_0.9": ("90 % at", tables.COUNT), "params_0.99": ("99 % at", tables.COUNT),
    "rmse": ("fit error (RMSE)", "{:.2%}")}, "Logistic fit of accuracy against log parameters"))
Markdown(regimes.plateau_notes(plateau))

# %% [markdown]
# ## How each regime learns
#
# Loss against epoch, for every seed of one example configuration per regime (the one at the median size of the
# regime): unstable networks plateau high and differ by seed; overfitting ones see their validation loss turn up.

# %%
examples = regimes.examples(configs, features)
ch.figure(plots.learning_curves(ch.store.histories(configs=ch.configs()), examples), "learning_curves")

# %%
reps = ch.ask("representatives")
Markdown(regimes.representatives_in_words(reps))

# %%
ch.table("representatives", reps.drop_duplicates("config_id"), {
    "model": ("model", None), "n_params": ("parameters", tables.COUNT), "regime": ("regime", None),
    "test_mean": ("test accuracy (mean over seeds)", tables.ACCURACY)}, "Representative models")
