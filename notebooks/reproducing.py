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

from IPython.display import HTML, Markdown, display

from minarch_core.book import benchmarks, chapter, provenance

ch = chapter.from_notebook("reproducing", globals())
info = json.loads(ch.read("build_info", required=True))
Markdown(provenance.built_in_words(info))

# %% [markdown]
# What the runs behind this book cost to train, read from the run store whatever build trained them: each run
# records its own training time (its share of its bundle's time, by forward FLOPs), so the sum is the compute of a
# fresh build on this store's machine; with `workers` processes the wall time is roughly the sum divided by the
# workers.

# %%
cost = provenance.training_cost(ch.store, info)
display(Markdown(provenance.cost_in_words(cost)))
ch.table("training_cost", cost, {
    "dataset": ("dataset", None), "family": ("family", None), "runs": ("runs", "{:,}"),
    "train_minutes": ("training minutes", "{:.1f}")}, "Training cost of the book's runs")

# %% [markdown]
# ## Download the results
#
# Every number in this book can be recomputed from one archive: the table of runs (one row per run: its config,
# architecture and final metrics), every run's history (one row per epoch), and every analysis table of the study
# (`minarch_core/analyses/tables.py`), as Parquet, named by the study's identity (the profile and its overrides,
# hashed).

# %%
ch.archive(provenance.study(info), info["datasets"])

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
ch.table("notebook_times", provenance.chapter_times(info), {
    "dataset": ("dataset", None), "chapter": ("chapter", None), "minutes": ("minutes", "{:.2f}")},
    "Time to execute each chapter in this build")

# %%
ch.table("versions", provenance.versions(), None, "Package versions")

# %%
Markdown(provenance.machine_in_words())

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
HTML(benchmarks.output(ch.read("benchmark"), "speed.py", info["commit"], "No CPU benchmark output: run make benchmark."))

# %% [markdown]
# Why the smallest-model chapter takes what it takes: `make phases DATASET=cifar10` (`benchmarks/phases.py`, on the
# store a build left) times that chapter phase by phase on one core, as the book runs it, beside each phase's model
# arithmetic and that arithmetic's time at the matmul peak, and says what share of the peak the chapter's target
# would need:

# %%
HTML(benchmarks.replay(ch.read("phases"), "The frontier chapter, phase by phase",
                       "No phase timings: run make phases DATASET=cifar10 after a book build."))

# %% [markdown]
# What bounds racing's savings: `make racing DATASET=cifar10` (`benchmarks/racing.py`, on the same store) measures
# every variant of the frontier on the whole validation split, then replays stopping rules on those measurements:
# the book's, the same test against every no-larger variant, positive tolerances, and an oracle that knew the
# whole-split Pareto set, which no valid test reaches. Each with the image-evaluations it saves and the accuracy its
# Pareto set loses at any size:

# %%
HTML(benchmarks.replay(ch.read("racing"), "Racing's stopping rules, replayed",
                       "No racing replay: run make racing DATASET=cifar10 after a book build."))

# %% [markdown]
# ### On a GPU
#
# `benchmarks/gpu.py` trains a spread sample of the paper profile's configurations on one CUDA GPU exactly as its
# sweep would (30 seeds stacked per task, the whole training split), measures each task and the GPU's matmul peaks,
# and projects the full paper profile of all three datasets from a per-grid fit of time against FLOPs. Its targets
# and its whole output:

# %%
HTML(benchmarks.output(ch.read("gpu_benchmark"), "gpu.py", info["commit"],
                      "No GPU measurement has been made: run benchmarks/gpu.py on a machine with a GPU."))

