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
from IPython.display import Markdown

from minarch_core.analyses import findings, quantization
from minarch_core.book import chapter, plots, tables

ch = chapter.from_notebook("quantization", globals())
curves = ch.ask("quantization")
ch.figure(plots.quantization_curves(curves), "quantization")

# %%
tolerance = ch.ask("tolerance")
t = tolerance[tolerance.granularity == "tensor"].assign(relative=lambda f: findings.relative_drop(f))
t = t.groupby(["config_id", "model"]).agg(n_params=("n_params", "first"), min_bits=("min_bits", "median"),
                                          drop_4bit=("drop_4bit", "mean"), relative=("relative", "mean"),
                                          drop_2bit=("drop_2bit", "mean")).reset_index().sort_values("n_params")
half = len(t) // 2
small, large = t.relative.iloc[:half].mean(), t.relative.iloc[half:].mean()
by_size = (f" At 4 bits the smaller half of the models lose **{small:.1%}** of what they had learned above chance, "
           f"the larger half **{large:.1%}**: the "
           + ("smaller models lose more." if small > large else "larger models lose as much or more.")) if half else ""
Markdown(f"Symmetric per-tensor, the lowest bit width within one point of float32 is **{t.min_bits.median():.0f} bits** "
         f"(median over {len(t)} models, each the median of its seeds).{by_size} At 2 bits every model loses at least "
         f"{t.drop_2bit.min() * 100:.0f} points of accuracy.")

# %%
ch.table("tolerance", tolerance.assign(setting=tolerance.scheme + ", per " + tolerance.granularity), {
    "model": ("model", None), "setting": ("setting", None), "n_params": ("parameters", tables.COUNT),
    "float32_acc": ("float32 accuracy", tables.ACCURACY), "min_bits": ("lowest bits within 1 point", "{:.0f}"),
    "drop_8bit": ("drop at 8 bits", "{:+.1%}"), "drop_4bit": ("drop at 4 bits", "{:+.1%}"),
    "drop_2bit": ("drop at 2 bits", "{:+.1%}")}, "Precision tolerance of every representative model")

# %% [markdown]
# Fake quantization (rounding the weights in float32) is how precision is studied; real deployments store integers.
# As a cross-check, the largest representative model runs from int8 weights through torch's int8 kernel:

# %%
largest = max(ch.store.runs_of(ch.ask("representatives")), key=lambda run: run.summary["n_params"])
check = quantization.int8_crosscheck(largest, ch.data_root)
Markdown(f"Its Linear layers stored as int8 take **{check['int8_linear_bytes']:,} bytes**. Fake and real int8 "
         f"agree on **{check['argmax_agreement']:.2%}** of the test predictions (largest logit difference "
         f"{check['max_abs_logit_diff']:.2g}); test accuracy {check['fake_test_acc']:.2%} with fake quantization, "
         f"{check['int8_test_acc']:.2%} with int8 weights.")
