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
# # Method
#
# The paper (Zheng et al., arXiv 2601.17987) publishes its questions and findings but not its code, training
# settings or definitions. Where it is silent, this book makes a choice, states it here, and makes it a parameter.
# This page is the reference for the rest of the book: the workflow, the data, training, architectures, profiles,
# the regime rule, pruning, quantization, and every parameter a chapter takes. Every value on it is read from the
# code that the other chapters run.

# %% tags=["parameters"]
datasets = "mnist,fashion_mnist,cifar10"
profile = "quick"
renderer = "default"
figures = None

# %%
import pandas as pd
from IPython.display import Markdown, display

from minarch_core.analyses import findings, regimes, variants
from minarch_core.book import chapter, method, plots

ch = chapter.from_notebook("method", globals())
ch.figure(plots.workflow(), "workflow")

# %% [markdown]
# ## Data
#
# MNIST, Fashion-MNIST and CIFAR-10 with their official test sets. A fixed validation set (the same for every run)
# is carved from each official training set, class by class; quick profiles may train on a stratified subset of
# the rest. Images are normalised per channel with the published training-set statistics; no augmentation (this is
# a study of capacity). CIFAR-10 keeps its colour. The table also shows what each image size implies for two
# choices below: the ViT's patch size, and how many of a ViT's seeds a CPU trains in one stacked step.

# %%
ch.table("datasets", method.datasets(ch.datasets), None, "The datasets")

# %% [markdown]
# ## Training
#
# Plain minibatch training with PyTorch's default initialisation and ReLU, for a fixed number of epochs without
# early stopping (so that overfitting can show). After every epoch (epoch 0 is the untrained model) a clean
# evaluation measures train, validation and test loss and accuracy on **monitor subsets**: each split cut to a fixed
# stratified sample of at most `train.MONITOR_PER_CLASS` images per class, the same images for every epoch and every
# run. Learning curves, the best epoch and the validation-loss upturn that marks overfitting are read from these rows.
# Once training ends the model is evaluated on the **whole** splits, and those are a run's accuracies: every table,
# regime and comparison uses them. (Evaluating the whole splits every epoch cost nearly half the quick profile's
# arithmetic.) On CUDA, matrix products run in full float32 (TF32 off), and each full training minibatch replays a
# CUDA graph of the whole step. A run is identified by the hash of its full config; `seed` fixes both the initial
# weights and the order of the examples.
#
# Runs train in **bundles**. Runs that share every setting of the training loop (dataset, data subset, batch size,
# epochs, optimiser, learning rate, loss) and a seed see the same minibatches, so one seed's architectures of a
# family train as one fused program (`engine.fused`; the idea of HFTA and ParallelMLPs): a DNN bundle's first
# layers are one matrix product on the shared input, its deeper layers and classifiers batched products over members
# of the same shape (layers narrower than 64 units padded with zeros that stay exactly zero); a CNN bundle's
# convolutions are one convolution, its heads one batched product over channels (on CUDA: on a CPU, where fused CNNs
# measured no faster than one at a time, each CNN trains alone). Every
# parameter element belongs to one member, the members' losses are summed, and Adam, AdamW and SGD act on each
# element alone, so each member gets the updates it would get trained alone and is stored as its own run: a test
# trains bundles of mixed DNNs and CNNs in float64 on MNIST and finds every weight within 1e-12 of its solo
# training (in float32, rounding differences grow as any two float orders do). The ViT has no fused form: one
# architecture's seeds train as one stacked computation (`torch.func.stack_module_state` + `vmap`, each seed with its
# own weights and data order), as many as keep one step's stacked minibatches within `sweep.CPU_STEP_BYTES` on a
# CPU (the data table above gives the count). A fused program holds one seed on a CPU (stacking seeds on top
# measured slower there) and all of them on CUDA. A bundle stays within a memory budget (`MINARCH_BUNDLE_MEMORY`,
# 2 GiB by default) and about `sweep.BUNDLE_SECONDS` of estimated work, so a killed sweep loses little; its wall time
# is shared among its runs by their forward FLOPs (each run's `time_s`). A member that diverges stops alone: no
# other member reads its parameters. Adam, AdamW and SGD run as PyTorch's fused kernels.
#
# **Training precision** is part of a run's config (`train_precision`): `fp32`, the reference and every profile's
# default, or `bf16`, the training steps and the per-epoch rows under PyTorch's bfloat16 autocast while weights,
# gradients, the optimiser's state and the final whole-split accuracies stay float32 (the book measures the weights'
# precision, so every compression measurement is float32 too). A bf16 run has an id of its own; an fp32 run keeps
# the id it had before the field existed. Fused architectures train under bf16 exactly as alone; seeds stacked
# through `vmap` did not (their weights drifted 1e-2 to 4e-2 apart from solo training in two epochs), so bf16 seeds
# train one program each. bf16 pays only on a processor that multiplies bfloat16 natively (avx512_bf16 or AMX) and
# only for layers wide enough that the casts cost less than they save; it becomes a profile's default only once a
# study trained both ways shows the same regimes, minimal sizes and verdicts. The defaults:

# %%
ch.table("training", method.training(), None, "Training settings of every run")

# %% [markdown]
# ## Architectures
#
# - **DNN shapes (Phase 1).** The size of a network is its first hidden layer's width, a rung of the paper's
#   12-width ladder; each further layer moves one rung up (`+`), down (`-`) or stays (`=`), clamped at the ladder's
#   ends: 3^(L-1) patterns for depth L, 480 configurations for depths 1 to 4 (428 distinct networks; clamped
#   patterns that coincide are trained once).
# - **Square DNNs, CNNs, ViTs (Phase 2).** Square DNNs repeat one width; the CNN is one 3x3 convolution (stride 1,
#   no padding), ReLU, flatten, linear classifier, its capacity set by the number of channels; the ViT is a standard
#   pre-norm Vision Transformer (patch embedding, class token, learned positions) whose embedding width is swept;
#   its blocks and heads are in the profile table below, and its patch size per dataset in the data table above,
#   chosen so that every dataset gives the same number of patches (CIFAR-10's 32×32 images cut into 4×4 patches
#   would make four times as many tokens, and attention cost grows with their square).

# %%
display(Markdown(method.ladder_words()))
ch.table("shapes", method.shapes(), {"pattern": ("step pattern", None), "widths": ("widths", None)},
         "Phase-1 shapes of size 10")

# %% [markdown]
# - **Hybrids (beyond the paper).** The paper closes by proposing hybrid architectures; two families take it up.
#   Each is a convolutional stem (one 3x3 convolution of stride 2 with padding 1, ReLU, max-pooling) feeding
#   another family's head. **Conv+MLP**: the stem's map flattened into an MLP with one hidden layer of `ratio` x
#   channels units (the head widens with the stem, as a ViT's MLP widens with its width, so that one knob spans
#   sizes). **Conv+ViT**: the stem replaces the ViT's patch embedding, each position of its map a token, then the
#   ViT's class token, learned positions and pre-norm blocks. The pool is the smallest that leaves at most 8x8
#   positions for the MLP, and at most 4x4 tokens for attention: the ViT's own 16 patches, so that the Conv+ViT
#   differs from the ViT by its embedding. Stride 2, one hidden layer and one encoder block are there for cost: on
#   2 CPU cores the hybrids' quick grids may add at most 15 % to the profile's training time (the benchmark measures
#   their share), and a stride-1 stem or a 7x7 token grid cost several times as much. So their quick grids span fewer
#   parameters than the CNN's and ViT's (the table below); the paper profile's grids extend them. Neither has a fused
#   form, which is the fallback the engine states: each architecture trains alone, the Conv+ViT's seeds stacked like
#   the ViT's, the Conv+MLP's one by one like the CNN's.

# %%

ch.table("hybrids", method.hybrids(ch.study, ch.datasets), {
    "dataset": ("dataset", None), "family": ("hybrid", None), "stem": ("stem: map → pool → positions", None),
    "parameters": ("parameters", None), "parents": ("its parents' parameters", None)},
         f"The hybrids' stems, and the parameters the {ch.study.name} profile's grids span, beside their parents'")

# %% [markdown]
# ## Profiles
#
# A profile fixes the size of the study: seeds, epochs, training data and grids. This book was built with the
# profile named in the reproducing chapter; every field can be overridden per chapter with papermill parameters.

# %%
ch.table("profiles", method.profiles_table(), None, "The profiles")

# %% [markdown]
# ## Convergence regimes
#
# Decided per configuration from its seeds. A seed **failed** when it diverged or ended below chance plus
# `fail_margin`; it is **below level** when its test accuracy is below chance plus `min_level` of the way from
# chance to its family's *plateau* (the best mean test accuracy of any configuration of that family on that
# dataset). A configuration is
#
# - **unstable** when more than `max_failed` of its seeds failed or their final test accuracies have a standard
#   deviation above `max_std`: whether it learns depends on the seed;
# - **underfitting** when its seeds agree but more than `max_failed` of them are below level: it reliably learns
#   *something*, but not the task as its family can;
# - **overfitting** when its validation loss ends more than `max_upturn` (relative) above its minimum or its
#   train-test accuracy gap exceeds `max_gap`;
# - **learning** otherwise.
#
# Why a fourth label: the paper's "stable learning" means learning the task. Without a level criterion a network
# that reliably reaches the same poor accuracy (a four-dimensional ViT at about 50 % on MNIST, say) would count as
# learning and set the "minimal parameters for stable learning". Calling it unstable would hide that its seeds
# agree; *underfitting* says what it is, and keeps the paper's three regimes intact. Only learning and overfitting
# configurations learn the task.
#
# **The minimal number of learnable parameters is a dose-response** (`minarch_core.analyses.dose`). Each seed of
# a square configuration (the Phase-1 shapes, bottlenecks included, are their own analysis) either learned the task
# (it did not fail and it is not below level) or did not. Per dataset and family a logistic curve with a positive
# slope, the probability that a seed learns against log10(parameters), is fitted by maximum likelihood with Firth's
# penalty (it keeps the fit finite when the outcomes separate between two grid points, as they do on a coarse
# grid), and the minimal size is where that probability reaches `learn_probability`. Its 95 % interval is the
# profile likelihood's, searched one decade beyond the grid on either side (an end that reaches it is open: "below
# the grid", "beyond the grid"); the findings compare minimal sizes with draws from each estimate's confidence
# distribution. Our choice, the paper being silent: an earlier version of this book took the smallest count from
# which *every* larger configuration learns, a last-failure statistic that a bootstrap over seeds cannot estimate
# (five lucky seeds of a configuration that fails 45 % of the time hide it in every draw) and that a coarse grid
# pins to one of its points; the fit reads every seed and its interval spans the gap between grid points. On
# synthetic outcomes with a known threshold its interval covers the truth at about the stated rate (the tests check
# it). When no seed of the family fails, or the fitted crossing lies below its smallest configuration, the estimate
# is an upper bound ("at most": the family cannot show how much smaller it could be); when none learns, or the
# crossing lies beyond its largest, it is "not reached". The spread limit `max_std` decides the regime map, not
# the minimal size. The regimes chapters show how the estimate moves as each threshold it reads is varied over the
# ranges below.

# %%
ch.table("thresholds", regimes.thresholds_table(), {"threshold": ("threshold", None), "value": ("value", "{:g}"),
                                                     "meaning": ("meaning", None)}, "The regime rule's thresholds")

# %%
Markdown(method.sensitivity_ranges())

# %% [markdown]
# ## Pruning and quantization
#
# Both study **representative models** chosen by rule: per dataset, family and depth (square DNNs), the smallest
# and the largest configuration that learns the task and one between, each with its three lowest seeds, so every
# curve is drawn as a band over seeds. Pruning also compares depths **at matched size**: square DNNs that learn
# the task, grouped into bands of about equal parameter count (within a factor 1.3) with one network per depth and
# at least two depths, so that depth is not confounded with size; every seed of every band member is pruned on the
# `matched` slice's finer sparsity grid, each band gives a least-squares slope of redundancy against depth, and the
# depth effect is their mean (bands and seeds resampled for its interval).
#
# - **Pruning**: L1 magnitude, unstructured, with `torch.nn.utils.prune` (the smallest magnitudes go, found by
#   `torch.kthvalue`; of weights tied at the threshold, the first in memory order); every Linear and Conv2d weight
#   (biases, LayerNorms and embeddings kept); global (one threshold) and per layer (one fraction everywhere); one-shot,
#   without fine-tuning (the library also fine-tunes and prunes iteratively). Redundancy: the largest sparsity up
#   to which every tested sparsity keeps test accuracy within one point of the dense model.
# - **Quantization**: post-training and weight-only: every Linear and Conv2d weight rounded to a uniform grid
#   (symmetric per tensor, and asymmetric per output channel) or cast to a 16-bit float type; activations and
#   biases stay float32. The rounding equals `torch.fake_quantize_per_*_affine`, and 8 bits are cross-checked
#   against real int8 weights in torch's int8 kernel. A drop is also measured *relative to what the model had
#   learned*: the accuracy lost divided by the float32 accuracy above chance, so that a dataset whose models start
#   lower is not flattered by a smaller absolute drop.
# - Both measure test accuracy only (the tolerance rules read nothing else).
# - **The smallest model** (`minarch_core.analyses.frontier`): every configuration of the family grids that learns the
#   task, a few seeds each, pruned (one-shot, global L1) to each sparsity below and its surviving weights rounded to
#   each precision below (symmetric, per output channel) or cast to float16; pruned weights stay exactly zero. Size is
#   the byte count of a real encoding (`analyses.encoding`: bit-packed integer codes with their float32 scales, per
#   tensor the cheaper of dense, bitmap and 4-bit relative-index layouts), tested to round-trip. The validation split
#   is **raced** (`analyses.racing`): within a family, every variant (a configuration at a sparsity and precision, its
#   seeds pooled) is measured on the same growing slices of the validation images, in one fixed random order, and stops
#   once a paired test proves that a variant no larger is more accurate. The test is a betting confidence sequence for
#   sampling without replacement (Waudby-Smith and Ramdas, 2024) on the per-image differences of the two variants'
#   fractions of right seeds, valid at every stage, with a Bonferroni correction over every pair of the family's
#   variants; so, but for a stated small chance per family, a stopped variant is on no Pareto front, and the frontier
#   and every answer are drawn from variants measured on the whole split (a tolerance that also stops near-ties exists,
#   and is off: it would let a variant just below a target stop one just above it). What racing saves is bounded by the
#   data more than by the test: near the frontier, variants differ by fractions of a point, which a few thousand
#   validation images cannot tell apart at this error rate, so they finish. `benchmarks/racing.py` measures every
#   variant whole and replays the rule beside every pair tested, positive tolerances, and an oracle that knew the
#   whole-split Pareto set. The test split is measured only for the variants the chapter reports (each family's Pareto
#   set, the recommendations, the recovery comparison) and for any that `recommend` chooses later, which it measures
#   then. `recommend` chooses on the validation split by a one-sided Student-t lower bound over seeds and reports the
#   test split. Recovery fine-tunes the configurations that own the frontier for a few epochs at low bit widths with
#   the masks held and the rounding in the loop (straight-through), every variant of its grid, stacked: no sound rule
#   says beforehand which fine-tuned variant cannot reach the frontier, since fine-tuning also repairs what pruning
#   cost and can end above the unpruned model (tried on the quick book, a rule that skipped the variants whose size
#   some variant already filled at that model's accuracy dropped points of CIFAR-10's frontier); the smallest-model
#   chapter says how many fine-tuned variants each frontier holds. Component sensitivity rounds one component group at
#   a time to a few bit widths, the rest float32, and measures the paired drop on the test split's monitor subset. The
#   exact grids follow.
# - **Export** (`minarch export`, `minarch_core.analyses.export`): the chosen variant's typical seed (the lower
#   median of its seeds' validation accuracies) as `model.onnx` (its rounded weight layers as int8 or uint8
#   initialisers feeding `DequantizeLinear` at 8 bits or fewer, float16 feeding a `Cast`) and `model.minarch`: the
#   8 bytes `MINARCH\0`, a little-endian uint16 format version, uint32 header length and uint32 CRC-32 of all that
#   follows, a JSON header (dataset, family, architecture, tensor names and shapes, the input's shape, scaling and
#   normalisation), then exactly the
#   encoding's bytes that the frontier counts, per tensor a 7-byte header (layout, kind, bit width or float type,
#   count), for integer grids the number of scales with their float32 values (and int32 zero points when
#   asymmetric), then the values, dense or sparse, bit-packed. `minarch_core.packed` reads it with numpy alone.
# - **One compression table per dataset** holds every variant these slices ask for, with its bytes and what was
#   measured of it. A variant that several slices ask for is built and evaluated once: the unpruned float32 model
#   is the first point of both pruning scopes and both quantization settings, a float16 cast is one variant in
#   both integer settings, and a matched-depth band's seed that is also a representative has one global curve. The
#   pruning and quantization curves and the component sensitivity are views of that table; the fine-tuned
#   variants' weights are stored with it. Its curve slices are measured on the study's **curve images**: in the
#   `quick` profile a fixed stratified subset of the test split, the same images for every variant and seed (a
#   paired design: two variants of one model differ only where their predictions differ); the `paper` profile
#   measures the whole split. The frontier races on validation
#   and completes on the whole test split in every profile, so every answer the book reports or `recommend` and
#   `export` give is a whole-split number. What the subset adds to the uncertainty follows the grid.
#
# ## Findings
#
# Each claim of the paper is split into parts, each a rule over the analysis tables (`minarch_core.analyses.findings`)
# that returns an estimate, a 95 % interval (seeds resampled, and models or size bands where models are compared;
# minimal sizes drawn from their confidence distributions) and a verdict:
#
# - *agrees* or *differs* when the whole interval lies on one side of no effect;
# - *no effect* when it lies inside the smallest effect that matters, stated per claim before looking (the table
#   below): an effect smaller than that answers the claim, it does not leave it open;
# - *out of range* when a family's minimal size is a bound below its smallest member and the comparison needs to
#   know how far below (the CNN, whose one-channel network already learns MNIST and Fashion-MNIST): the paper's
#   family cannot show it, however long it trains;
# - *undecided* otherwise.
#
# The verdicts of a claim's parts are corrected together by Holm's step-down rule, so that each claim holds a
# family-wise level of 5 %: a part decided alone but not after the correction reads *undecided* and says so. The
# parts that read the regime thresholds (the regimes' order, the minimal sizes' growth, the hybrids' sizes) are
# decided again under every threshold setting of the sensitivity ranges, and the findings table says under how many
# they keep their verdict.

# %%
ch.table("margins", findings.margins(), {
    "part": ("claim part", None), "margin": ("smallest effect that matters", None)},
    "The smallest effect that matters, per claim part (stated before looking)")

# %%
grid = ch.study.compression
ch.table("compression", pd.DataFrame(grid.summary()), None,
         "The compression grid of this study: each slice's variants are every sparsity x precision x integer grid")

# %%
Markdown(method.racing_words(grid))

# %%
Markdown(variants.curve_words(grid))

# %% [markdown]
# ## Chapter parameters
#
# Every chapter is a notebook with a `parameters` cell; papermill (or `minarch chapter NAME -p NAME VALUE`)
# overrides its values. Each parameter is declared once, with its type and range, and checked when the chapter
# opens: a wrong value stops the chapter at its first cell with a message that names it.

# %%
ch.table("parameters", method.chapter_parameters(), None, "Chapter parameters", fold_after=20)
