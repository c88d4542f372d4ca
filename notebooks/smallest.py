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
# # The smallest model
#
# What is the smallest model, in bytes, that reaches a given accuracy on this dataset, and how sure is that? This page
# takes every configuration that learns the task (the [regimes chapter](regimes.ipynb)'s learning and overfitting
# regimes) from the family grids, a few seeds each, and compresses each trained model both ways at once: L1 pruning
# (one-shot, global) to a grid of sparsities, then the surviving weights rounded to a few bits (symmetric, one grid per
# output channel) or cast to float16. Every variant is sized by a real encoding (integer codes bit-packed with their
# scales; a sparse tensor stored as a bitmap or as relative indices when that is smaller) and evaluated on the
# validation split, which every choice on this page reads. That evaluation is a race: within each family, the variants
# are measured on growing random slices of the validation images, and a variant stops once a paired test on the same
# images proves that a no-larger variant is more accurate, with a small, stated chance per family that any stops wrongly
# (the settings below; the method chapter gives the test); a stopped variant could not be on the frontier, and the
# others are measured on the whole split. The test split is then measured for the variants this page reports (each
# family's frontier, the recommendations, the recovery comparison): chosen on validation, they are the same whichever
# variants are measured further, and the others need not pay for the largest split. The settings, as the code holds
# them, follow; the [method chapter](../method.ipynb) gives the rest.

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

from minarch_core.analyses import components, frontier, recovery, references
from minarch_core.book import chapter, plots, tables

ch = chapter.from_notebook("smallest", globals())
table = ch.ask("frontier")
summary = frontier.summarise(table)
front = frontier.pareto(summary)
refs = references.table(ch.dataset)
display(Markdown(frontier.settings_text(table, ch.study.compression)))
ch.figure(plots.frontier(summary, front, refs), "frontier")

# %% [markdown]
# The lines join each family's Pareto frontier (chosen on validation accuracy: no variant of that family is both
# smaller and more accurate there), each point the mean test accuracy over seeds with their interval as a bar. The
# faint points are the other variants (a triangle when fine-tuned, see below) at their mean validation accuracy, the
# number the choice compared, measured on the images racing had reached when it stopped them (their tooltip says how
# many); the line's heights are test accuracies, so a faint point can sit a little above it where validation and
# test differ. The diamonds are published tiny models of other architectures (tagged as in
# the table at the end of this page), sized as float32: they stack several convolutions with pooling and add
# normalisation, augmentation and long schedules, which neither the paper's families nor this book's one-convolution
# hybrids do.

# %%
Markdown(frontier.ownership(frontier.pareto(summary, by=("dataset",))))

# %% [markdown]
# ## Recovery: quantization-aware fine-tuning
#
# Post-training rounding is the cheapest arm. The other: the models that own most of the frontier are fine-tuned
# for a few epochs at each low bit width, with the pruning masks held and the rounding in the loop (the
# straight-through estimator of `torch.fake_quantize_per_channel_affine`), then stored exactly as before. Published
# tiny-MLP results report that such training holds accuracy at 2-4 bits where post-training quantization collapses;
# the verdict column checks that here, by the rule in the caption. The float32 column is the same pruned models
# before any fine-tuning, so fine-tuning, which also repairs what pruning cost, can end above it.

# %%
gains = ch.ask("recovery")
ch.table("recovery", gains, {
    "bits": ("bits", "{:.0f}"), "float32": ("float32", tables.ACCURACY),
    "post_training": ("post-training", tables.ACCURACY), "quantization_aware": ("quantization-aware", tables.ACCURACY),
    "recovered": ("recovered", "{:+.1%}"), "pairs": ("variants compared", "{:.0f}"), "verdict": ("claim", None)},
    "Mean test accuracy of the same configurations and sparsities, rounded after training or fine-tuned rounded "
    f"(collapse: more than {recovery.COLLAPSE:.0%} below float32; held: within {recovery.HELD:.0%})")

# %%
Markdown(frontier.recovery_text(summary))

# %% [markdown]
# ## Which parts tolerate low precision
#
# The paper leaves open how a transformer's components respond to quantization. Here one component group of each
# representative model (from the [regimes chapter](regimes.ipynb)) is rounded to 8, 4, 3 or 2 bits while everything
# else stays float32: for the ViT its patch embedding, attention qkv and output projections, MLPs, head, and the
# positions, class token and LayerNorms together (the Conv+ViT the same, its convolutional stem in place of the patch
# embedding); for the Conv+MLP its convolutional stem, its MLP's hidden layer and its classifier; for DNNs and CNNs
# the first, middle and last weight layers. Each
# is measured on the test split's monitor subset (the [method chapter](../method.ipynb) says how it is drawn): the
# drop is paired, the same images with and without the rounding, so only the images whose prediction flips make it
# noisy, and the subset costs a fraction of the whole split's time.

# %%
rank = ch.ask("component_ranking")
ch.figure(plots.components(rank), "components")

# %%
Markdown(components.in_words(rank))

# %% [markdown]
# ## Recommendations
#
# `minarch recommend` answers the practitioner's question: the smallest variant whose **validation** accuracy
# reaches the target with the asked confidence over seeds (a one-sided Student-t bound; the settings above give the
# default), reported with its **test** accuracy, which played no part in the choice. The bound holds for each
# variant alone: the smallest of many that pass is favoured by luck, which is why the test interval is shown too.
# The targets below are spread between chance and the best variant.

# %%
answers = frontier.answers(table, frontier.targets(summary, ch.dataset))
ch.table("recommendations", frontier.readable(answers), {
    "target": ("target", "{:.0%}"), "met": ("met", None), "model": ("model", None),
    "sparsity": ("sparsity", "{:.0%}"), "precision": ("precision", None), "size_bytes": ("bytes", tables.COUNT),
    "ratio": ("vs float32", "{:.0f}x"), "test_mean": ("test accuracy", tables.ACCURACY), "interval": ("interval", None)},
    "The smallest variant reaching each target (a miss shows the closest variant)")

# %% [markdown]
# ### Ask it here
#
# Set a target accuracy, a family and a byte budget with the controls below the chart: the ringed point is the
# variant `minarch recommend` answers with for that question, by the same rule on the same rows (every variant the
# race did not stop, each at its validation lower bound over seeds; the dashed line is the target), said above the
# points with its bytes and test accuracy. It runs in this page, with no kernel and no network. Variants outside the
# family or the budget fade.

# %%
ch.figure(plots.question(frontier.candidates(summary), frontier.targets(summary, ch.dataset),
                         ch.downloads(answers)), "question")

# %% [markdown]
# Or ask from a shell, for example:

# %%
Markdown(frontier.transcript(table, answers, ch.dataset, ch.study.name))

# %% [markdown]
# Or take the answers home: each met target's model, exported as `minarch export` writes it (one seed, the lower
# median of its seeds on validation; `model.onnx` for any runtime, `model.minarch` holding exactly the bytes counted
# above, and a card with the input it expects; [the manual](../using/smallest.md) says how to run it):

# %%
ch.exported(answers, table)

# %% [markdown]
# ## The frontier, point by point

# %%
ch.table("frontier", frontier.readable(front), {
    "model": ("model", None), "n_params": ("parameters", tables.COUNT), "sparsity": ("sparsity", "{:.0%}"),
    "precision": ("precision", None), "method": ("weights", None), "size_bytes": ("bytes", tables.COUNT),
    "test_mean": ("test accuracy", tables.ACCURACY), "interval": ("interval", None)},
    "Every family's Pareto frontier (chosen on validation), smallest first")

# %%
ch.table("references", refs, {
    "tag": ("tag", None), "name": ("model", None), "params": ("parameters", tables.COUNT), "size_bytes": ("float32 bytes", tables.COUNT),
    "accuracy": ("published test accuracy", tables.ACCURACY), "note": ("note", None)},
    "Published tiny models drawn as reference points (the figure's diamonds link to their sources, and the CSV "
    "below lists them)")
