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
# # Reproducing this book
#
# Everything in this book is computed by the code in `minarch_core`, called from the notebooks in `notebooks/`,
# executed by papermill and compiled by Jupyter Book. This page records what built the copy you are reading.

# %% tags=["parameters"]
build_info = "book/build-info.json"
benchmark = "benchmarks/latest.txt"  # what `make benchmark` last printed
gpu_benchmark = "benchmarks/gpu-latest.txt"  # what benchmarks/gpu.py last printed on a GPU
phases = "benchmarks/phases-latest.txt"  # what `make phases` last printed
racing = "benchmarks/racing-latest.txt"  # what `make racing` last printed
results = None  # the run store (default: MINARCH_RESULTS, else results/ of the project root)
figures = None

# %%
import json
import platform
import re
from importlib.metadata import version

import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

from minarch_core.book import benchmarks, chapter, plots, tables
from minarch_core.engine import data, models, profiles

ch = chapter.from_notebook("reproducing", globals())
info = json.load(open(ch.file("build_info", required=True)))
Markdown(f"Built from commit `{info['commit']}` with profile **`{info['profile']}`** on "
         f"{', '.join(data.spec(d).title for d in info['datasets'])}, on {info['started']}; training and "
         f"executing the notebooks took **{info['seconds'] / 60:.1f} minutes** of wall time on {info['machine']}, "
         f"the chapters of {info.get('parallel', 1)} dataset(s) at a time (runs the store already held were read, "
         "not trained again).")

# %% [markdown]
# What the runs behind this book cost to train, read from the run store whatever build trained them: each run
# records its own training time (its share of its bundle's time, by forward FLOPs), so the sum is the compute of a
# fresh build on this store's machine; with `workers` processes the wall time is roughly the sum divided by the
# workers.

# %%
prof = profiles.study(info["profile"], **info.get("overrides", {}))
cost = pd.concat([ch.store.table(configs=prof.configs(d)) for d in info["datasets"]], ignore_index=True)
cost = (cost.groupby(["dataset", "family"]).agg(runs=("run_id", "size"), train_minutes=("time_s", "sum"))
        .assign(train_minutes=lambda d: d.train_minutes / 60).reset_index())
hybrid = cost.family.isin(models.hybrids())
display(Markdown(f"{cost.runs.sum():,d} runs, **{cost.train_minutes.sum():.0f} minutes** of training in all"
                 + (f", of which the hybrid families (beyond the paper) took **{cost[hybrid].train_minutes.sum():.1f} minutes**, "
                    f"{cost[hybrid].train_minutes.sum() / cost[~hybrid].train_minutes.sum():.0%} on top of the paper's "
                    f"families" if hybrid.any() else "") + ":"))
ch.table("training_cost", plots.labelled(cost), {
    "dataset_title": ("dataset", None), "family_title": ("family", None), "runs": ("runs", "{:,}"),
    "train_minutes": ("training minutes", "{:.1f}")}, "Training cost of the book's runs")

# %% [markdown]
# ## Download the results
#
# Every number in this book can be recomputed from one archive: the table of runs (one row per run: its config,
# architecture and final metrics), every run's history (one row per epoch), and every analysis table of the study
# (`minarch_core/analyses/tables.py`), as Parquet, named by the study's identity (the profile and its overrides,
# hashed).

# %%
if ch.figures is None:
    display(Markdown("No figure folder was given to this chapter, so no archive was written."))
else:
    archive = ch.store.export(prof, info["datasets"], ch.figures / "reproducing")
    display(tables.archive(archive, [data.spec(d).title for d in info["datasets"]]))

# %% [markdown]
# ## Commands
#
# ```bash
# # set up .venv, train what is missing, run every chapter, build the HTML
# make book
# # a quick look: one dataset, the CI profile
# make book PROFILE=smoke DATASETS=mnist
# # the test suite (what CI runs)
# make test
# # re-run one chapter, then the same by hand
# .venv/bin/minarch chapter pruning --dataset cifar10 --profile quick
# .venv/bin/papermill notebooks/pruning.ipynb out.ipynb \
#     -p dataset cifar10 -p profile quick
# ```
#
# Executed notebooks land in `book/<dataset>/`, figures as SVG and PNG in `book/figures/`, the HTML in
# `_build/html`. Runs live in the store (`results/` or `MINARCH_RESULTS`); a rebuild trains only what is missing.

# %%
times = pd.DataFrame(info["notebooks"]).assign(
    minutes=lambda d: d.seconds / 60, dataset=lambda d: d.dataset.map(lambda n: n if n == "all" else data.spec(n).title))
ch.table("notebook_times", times, {
    "dataset": ("dataset", None), "chapter": ("chapter", None), "minutes": ("minutes", "{:.2f}")},
    "Time to execute each chapter in this build")

# %%
packages = ["torch", "torchvision", "numpy", "pandas", "scipy", "altair", "papermill", "jupytext", "jupyter-book"]
ch.table("versions", pd.DataFrame({"package": packages + ["python"],
                                   "version": [version(p) for p in packages] + [platform.python_version()]}),
         {"package": ("package", None), "version": ("version", None)}, "Package versions")

# %%
Markdown(f"Torch runs {torch.get_num_threads()} threads here; CUDA {'is' if torch.cuda.is_available() else 'is not'} "
         "available. Every package version is pinned in `constraints.txt`.")

# %% [markdown]
# ## Speed
#
# `make benchmark` (`benchmarks/speed.py`) times, in one run on one machine, this project's trainer against a
# competent plain PyTorch loop (tensors in memory, index slices, one seed at a time) and against the textbook loop
# (a torchvision-style dataset of PIL images, `ToTensor`, `DataLoader`), on the same models, data and epochs; times
# seed batching (30 seeds stacked vs one at a time); projects the quick and paper sweeps from those measurements and
# divides the quick sweep's model FLOPs by its projected time and by a large `torch.mm`'s rate on the same machine
# (utilisation); times the compression frontier's evaluation of a model's 35 variants against one model at a time,
# and the smallest-model chapter's component evaluation and stacked fine-tuning against one variant at a time;
# and reads the last book build's times, saying for the last build from an empty store how its training compares
# with the floor of its arithmetic at the matmul peak and which lever is left. Its targets follow with their
# verdicts, met or missed, and the commit and machine they were measured on; its whole output, as it printed it, is
# one click below them.

# %%
benchmark = ch.values["benchmark"]
text = ch.file("benchmark").read_text() if ch.file("benchmark").exists() else ""
measured = re.search(r"speed.py, (?P<date>[^,]+), commit (?P<commit>\S+)", text)
if not measured:
    display(Markdown(f"`{benchmark}` is missing or unreadable: run `make benchmark`."))
else:
    same = measured["commit"] == info["commit"].split("+")[0]
    display(Markdown(f"These figures were measured on commit `{measured['commit']}` on {measured['date']}; this book "
                     f"was built from commit `{info['commit']}`"
                     + (", the same code." if same else ": the benchmark predates this build's code, so run "
                        "`make benchmark` to measure this commit.")))
display(Markdown(benchmarks.table(text, "")), HTML(benchmarks.folded(text, "The benchmark's whole output")))

# %% [markdown]
# Why the smallest-model chapter takes what it takes: `make phases DATASET=cifar10` (`benchmarks/phases.py`, on the
# store a build left) times that chapter phase by phase on one core, as the book runs it, beside each phase's model
# arithmetic and that arithmetic's time at the matmul peak, and says what share of the peak the chapter's target
# would need:

# %%
phases_text = ch.file("phases").read_text() if ch.file("phases").exists() else ""
if phases_text:  # its last line, the verdict, is long: said again below the scrolling box
    display(HTML(benchmarks.folded(phases_text, "The frontier chapter, phase by phase", opened=True)),
            Markdown(f"In its words: {phases_text.strip().splitlines()[-1].strip()}."))
else:
    display(Markdown(f"`{ch.values['phases']}` is missing: run `make phases DATASET=cifar10` after a book build."))

# %% [markdown]
# What bounds racing's savings: `make racing DATASET=cifar10` (`benchmarks/racing.py`, on the same store) measures
# every variant of the frontier on the whole validation split, then replays stopping rules on those measurements:
# the book's, the same test against every no-larger variant, positive tolerances, and an oracle that knew the
# whole-split Pareto set, which no valid test reaches. Each with the image-evaluations it saves and the accuracy its
# Pareto set loses at any size:

# %%
racing_text = ch.file("racing").read_text() if ch.file("racing").exists() else ""
if racing_text:
    display(HTML(benchmarks.folded(racing_text, "Racing's stopping rules, replayed", opened=True)))
else:
    display(Markdown(f"`{ch.values['racing']}` is missing: run `make racing DATASET=cifar10` after a book build."))

# %% [markdown]
# ### On a GPU
#
# `benchmarks/gpu.py` trains a spread sample of the paper profile's configurations on one CUDA GPU exactly as its
# sweep would (30 seeds stacked per task, the whole training split), measures each task and the GPU's matmul peaks,
# and projects the full paper profile of all three datasets from a per-grid fit of time against FLOPs. Its targets
# and its whole output:

# %%
gpu = ch.values["gpu_benchmark"]
gpu_text = ch.file("gpu_benchmark").read_text() if ch.file("gpu_benchmark").exists() else ""
gpu_measured = re.search(r"gpu.py, (?P<date>[^,]+), commit (?P<commit>\S+)", gpu_text)
display(Markdown(f"Measured on commit `{gpu_measured['commit']}` on {gpu_measured['date']}." if gpu_measured else
                 f"`{gpu}` is missing: no GPU measurement has been made."))
display(Markdown(benchmarks.table("", gpu_text)),
        HTML(benchmarks.folded(gpu_text, "The GPU benchmark's whole output")))

