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
# How far can the precision of the trained weights be cut? Each representative model's weights are rounded to a
# uniform grid of 16 down to 2 bits (post-training, weights only; activations stay float32) or cast to float16 /
# bfloat16, and test accuracy is measured again. Two settings: symmetric per-tensor grids (the simplest) and
# asymmetric per-channel grids (one grid per output unit, the usual choice of deployment toolkits).

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
import pandas as pd
from IPython.display import Markdown

from minarch_core.analyses import quantization
from minarch_core.book import chapter, plots

ch = chapter.open_chapter(**chapter.given("quantization", globals()))
models = ch.store.runs_of(ch.load("representatives"))
curves = ch.save("quantization", pd.concat([
    quantization.curves(models, scheme="symmetric", granularity="tensor", **ch.where),
    quantization.curves(models, scheme="asymmetric", granularity="channel", **ch.where)], ignore_index=True))
ch.figure(plots.quantization_curves(curves), "quantization")

# %%
tolerance = ch.save("tolerance", quantization.tolerance(curves))
t = tolerance[tolerance.granularity == "tensor"].sort_values("n_params")
half = len(t) // 2
Markdown(f"Symmetric per-tensor, the lowest bit width within one point of float32 is **{t.min_bits.median():.0f} bits** "
         f"(median over {len(t)} models). At 4 bits the smaller half of the models lose "
         f"**{t.drop_4bit.iloc[:max(half, 1)].mean():.1%}** on average, the larger half "
         f"**{t.drop_4bit.iloc[half:].mean():.1%}**; at 2 bits every model loses "
         f"{t.drop_2bit.min():.0%} or more.")

# %%
tolerance.round(4)

# %% [markdown]
# Fake quantization (rounding the weights in float32) is how precision is studied; real deployments store integers.
# As a cross-check, the largest representative DNN runs from int8 weights through torch's int8 kernel:

# %%
dnns = [m for m in models if m.config.family == "dnn"]
check = quantization.int8_crosscheck(max(dnns or models, key=lambda m: m.summary["n_params"]), ch.data_root)
pd.Series(check)
