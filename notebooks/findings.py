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
# # Findings across datasets
#
# The paper's claims, one by one, beside what this book measured. This page sets each claim next to the numbers
# the dataset chapters show, and gives a verdict by a simple stated rule, so a reader can disagree with a rule
# and still check the numbers; the figure puts the datasets side by side. The last claims go beyond the paper, to
# the hybrid architectures its closing section proposes: do they learn with fewer parameters than their parents,
# and do they own any part of a dataset's bytes frontier. Terms are defined in the [method chapter](method.ipynb).

# %% tags=["parameters"]
datasets = "mnist,fashion_mnist,cifar10"
profile = "quick"
seeds = None
epochs = None
train_per_class = None
results = None
renderer = "default"
figures = None

# %%
from IPython.display import Markdown

from minarch_core.analyses import findings, frontier, references
from minarch_core.book import chapter, plots, tables
from minarch_core.engine import profiles

ch = chapter.from_notebook("findings", globals())
claims = ch.ask("findings")  # every claim part of every dataset here: one table of the study
minimal = ch.ask_all("minimal")
ch.figure(plots.summary(minimal, ch.ask_all("redundancy"), ch.ask_all("tolerance"), references.intrinsic()),
          "summary")

# %% [markdown]
# A second count of what a task needs, drawn as crosses: the **intrinsic dimension** of Li et al.
# ([ICLR 2018](https://arxiv.org/abs/1804.08838), Table 1), the smallest random subspace of a *large* network's
# parameters in which training reaches 90 % of that network's accuracy. It counts directions a large network needs
# to move in, where the minimal size counts every parameter of a *small* network that learns the task. How the two
# counts compare where both exist:

# %%
Markdown(references.intrinsic_in_words(minimal))

# %% [markdown]
# ## The claims, part by part
#
# One row per part of each claim: the paper's statement, this book's estimate with its 95 % interval (seeds
# resampled, and models or size bands where models are compared; minimal sizes drawn from their fitted
# dose-responses), and the verdict. *Agrees* and *differs* need the whole interval on one side of no effect; *no
# effect* needs it inside the smallest effect that matters, stated per claim before looking (the verdict's
# footnote); *out of range* says the family cannot show the answer (its smallest member already learns, so how much
# smaller it could be lies outside it); *undecided* is what remains. A claim's parts are corrected together (Holm),
# so each claim holds a family-wise level of 5 %. The parts that read the regime thresholds say under how many of the
# regimes chapter's threshold settings they keep their verdict. Each part links to the chapter whose figure shows it.

# %%
tables.claims(claims, ch.study.name, ch.datasets)

# %%
Markdown(findings.summary_in_words(claims, ch.study, profiles.get("paper")))

# %% [markdown]
# ## The smallest model across datasets
#
# Each dataset's compression frontier from its [smallest-model chapter](mnist/smallest.ipynb), every family
# together: how many bytes each accuracy costs on each dataset.

# %%
front = frontier.pareto(frontier.summarise(ch.ask_all("frontier")), by=("dataset",))
ch.figure(plots.frontiers(front), "frontiers")

# %%
Markdown(frontier.across(front))

# %% [markdown]
# Quantization-aware recovery against the published claim (training with the rounding in the loop holds accuracy at
# 2-4 bits where post-training quantization collapses), per dataset and bit width:

# %%
recovered = ch.ask_all("recovery")
ch.table("recovery", recovered, {
    "dataset": ("dataset", None), "bits": ("bits", "{:.0f}"), "float32": ("float32", "{:.1%}"),
    "post_training": ("post-training", "{:.1%}"), "quantization_aware": ("quantization-aware", "{:.1%}"),
    "recovered": ("recovered", "{:+.1%}"), "verdict": ("claim", None)},
    "Quantization-aware recovery on every dataset")
