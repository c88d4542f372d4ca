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
# the dataset chapters saved, and gives a verdict by a simple stated rule, so a reader can disagree with a rule
# and still check the numbers; the figure puts the three datasets side by side. Terms are defined in the
# [method chapter](method.ipynb).

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
import numpy as np
import pandas as pd
from IPython.display import Markdown

from minarch_core.analyses import regimes
from minarch_core.book import chapter, plots
from minarch_core.engine import data

ch = chapter.from_notebook("findings", globals())
names = ch.datasets
configs, minimal, redundancy, tolerance = map(ch.load_all, ("configurations", "minimal", "redundancy", "tolerance"))
dnn_global = redundancy[(redundancy.scope == "global") & (redundancy.family == "dnn")]  # depth means DNN layers
ch.figure(plots.summary(minimal, dnn_global, tolerance[tolerance.granularity == "tensor"]), "summary")

# %%
rows = []

regime_counts = configs.groupby(["dataset", "regime"]).size().unstack(fill_value=0)
medians = configs.groupby("regime").n_params.median()
ordered = all(r in medians for r in regimes.REGIMES) and medians["unstable"] < medians["learning"] < medians["overfitting"]
rows.append(("Three regimes (unstable, learning, overfitting), ordered by parameter count",
             "; ".join(f"{d}: " + ", ".join(f"{n} {r}" for r, n in c.items() if n) for d, c in regime_counts.iterrows())
             + f". Median size: " + ", ".join(f"{r} {medians.get(r, np.nan):,.0f}" for r in regimes.REGIMES),
             "agrees" if ordered else "partly"))

spread = pd.concat([regimes.shape_spread(configs[configs.dataset == d]) for d in names], ignore_index=True)
lo, hi = spread[spread.params_max < 1e4].spread.median(), spread[spread.params_min >= 1e4].spread.median()
rows.append(("Shape barely matters for larger models; parameter count dominates",
             f"median accuracy spread across shapes and depths at matched size: {lo:.1%} below 10k parameters, "
             f"{hi:.1%} from 10k on", "agrees" if hi < lo / 2 else "differs"))

by_difficulty = data.by_difficulty(names)  # the datasets' own ranks: the paper's order of difficulty
need = minimal.pivot_table(index="family", columns="dataset", values="min_params", dropna=False).reindex(
    columns=by_difficulty).fillna(np.inf)  # not reached: more parameters than the grid holds
grows = {f: bool(len(v) > 1 and np.isfinite(v.iloc[0]) and v.is_monotonic_increasing) for f, v in need.iterrows()}
rows.append(("A minimal number of learnable parameters for stable learning, growing with task difficulty",
             "; ".join(f"{f}: " + " → ".join(f"{x:,.0f}" if np.isfinite(x) else "not reached" for x in v)
                       for f, v in need.iterrows()) + f" ({' → '.join(by_difficulty)})",
             "agrees" if all(grows.values()) else "partly" if np.isfinite(need.values).any() else "differs"))

by_depth, most = dnn_global.groupby("depth").redundancy.mean(), dnn_global.redundancy.max()
deeper = by_depth.is_monotonic_increasing and by_depth.iloc[-1] > by_depth.iloc[0]
rows.append((">60 % of parameters prunable with little loss; deeper networks more resilient",
             "mean global redundancy by depth: " + ", ".join(f"{d}: {v:.0%}" for d, v in by_depth.items())
             + f"; maximum {most:.0%}",
             "agrees" if deeper and most >= 0.6 else "partly" if most >= 0.6 else "differs"))

t = tolerance[tolerance.granularity == "tensor"]
corr = t[["n_params", "drop_4bit"]].assign(n_params=np.log10(t.n_params)).corr(method="spearman").iloc[0, 1]
per_dataset = t.groupby("dataset").drop_4bit.mean().reindex(by_difficulty)
harder_worse = len(per_dataset) > 1 and per_dataset.is_monotonic_increasing
rows.append(("Quantization hurts smaller models, and harder datasets, more",
             f"rank correlation of size and 4-bit accuracy drop: {corr:+.2f}; mean 4-bit drop: "
             + ", ".join(f"{d} {v:.1%}" for d, v in per_dataset.items()),
             "agrees" if corr < 0 and harder_worse else "partly" if corr < 0 or harder_worse else "differs"))

Markdown("| the paper | this book | verdict |\n|---|---|---|\n"
         + "\n".join(f"| {a} | {b} | **{c}** |" for a, b, c in rows))

# %%
verdicts = pd.Series([v for *_, v in rows]).value_counts()
open_claims = [f"*{v}* ({n})" for v, n in verdicts.items() if v != "agrees"]
Markdown(f"Of {len(rows)} claims, {verdicts.get('agrees', 0)} agree with the paper on the `{ch.study.name}` profile. "
         + (f"The others read {', '.join(open_claims)}: the dataset chapters show why. " if open_claims else "")
         + ("Small profiles (few seeds, short training, data subsets) blur the borders between regimes; the `paper` "
            "profile is the one to settle them." if ch.study.name != "paper" else ""))
