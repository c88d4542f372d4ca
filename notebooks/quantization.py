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
# # Quantization
#
# How far can the precision of the trained weights be cut? This page rounds the weights of one dataset's
# representative models to a uniform grid of 16 down to 2 bits (post-training, weights only; activations stay
# float32) or casts them to float16 / bfloat16, and measures test accuracy again. Two settings: symmetric
# per-tensor grids (the simplest) and asymmetric per-channel grids (one grid per output unit, the usual choice of
# deployment toolkits). The [method chapter](../method.ipynb) gives every setting.

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

from minarch_core.analyses import findings, quantization
from minarch_core.book import chapter, plots, tables

ch = chapter.from_notebook("quantization", globals())
curves = ch.ask("quantization")
ch.figure(plots.quantization_curves(curves), "quantization")

# %%
tolerance = ch.ask("tolerance")
display(Markdown(quantization.tolerance_in_words(tolerance)),
        Markdown(findings.said(ch.ask("verdicts"), "quantization", ch.title)))

# %%
ch.table("tolerance", tolerance, {
    "model": ("model", None), "setting": ("setting", None), "n_params": ("parameters", tables.COUNT),
    "float32_acc": ("float32 accuracy", tables.ACCURACY), "min_bits": ("lowest bits within 1 point", "{:.0f}"),
    "drop_8bit": ("drop at 8 bits", "{:+.1%}"), "drop_4bit": ("drop at 4 bits", "{:+.1%}"),
    "drop_2bit": ("drop at 2 bits", "{:+.1%}")}, "Precision tolerance of every representative model")

# %% [markdown]
# Fake quantization (rounding the weights in float32) is how precision is studied; real deployments store integers.
# As a cross-check, the largest representative model runs from int8 weights through torch's int8 kernel:

# %%
check = quantization.int8_of_largest(ch.store.runs_of(ch.ask("representatives")), ch.data_root)
Markdown(quantization.int8_in_words(check))
