"""Quantization-aware recovery: a few epochs of fine-tuning with the pruning masks held and the weights' quantization
in the loop, against post-training quantization of the same model.

In every forward pass of the fine-tuning, each weight layer's weight is the pruned weight (times the mask
``torch.nn.utils.prune`` computed, so pruned weights stay zero and get no gradient) rounded to the frontier's grid
(symmetric, per output channel, the scale taken from the current weights) by the one quantizer, ``grids.quantize``,
whose gradient is the straight-through estimator (identity inside the grid's range). Which sparsities, bit widths and
epochs: the compression grid's ``recovery`` slice (``engine.compression``). The run's own optimiser settings and loss
are used; the data order is drawn from its seed. The variants of one model are fine-tuned together, stacked as the
trainer stacks seeds (``finetune``). The fine-tuned model is then quantized exactly as post-training variants are, so
both arms are sized by the same encoding; its variants are few and all compared, so each is measured on the
validation split and the whole test split at once.
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine import fused, progress, sweep, train
from ..engine.compression import DEFAULT, Slice
from ..engine.store import Run
from . import encoding, grids, pruning, quantization
from .common import run_columns, score


def finetune(run: Run, dataset, grid, epochs: int = DEFAULT.recovery.epochs,
             setting=DEFAULT.recovery.settings[0]) -> list[nn.Module]:
    """``run``'s model pruned to each (sparsity, bits) of ``grid`` and fine-tuned ``epochs`` with ``bits``-bit weights
    (on the integer grid ``setting``: scheme, granularity) in the loop, the variants stacked ``per_stack`` at a time
    and trained together (``train.Stack``): every variant takes the same minibatches, in the run's own data order,
    with its own weights, mask, grid and optimiser state, so each gets the updates it would get alone (up to float
    rounding; tested against a single model under torch's pruning and quantization hooks). Returns the models in
    ``grid``'s order, masks made permanent, weights still float (to be quantized)."""
    size = per_stack(run, dataset, len(grid))
    order = sorted(range(len(grid)), key=lambda i: grid[i][1])  # each bit width a contiguous slice of a stack
    tuned = {}
    for start in range(0, len(order), size):
        group = order[start:start + size]
        tuned.update(zip(group, _finetune_stack(run, dataset, [grid[i] for i in group], epochs, setting)))
    return [tuned[i] for i in range(len(grid))]


def per_stack(run: Run, dataset, variants: int) -> int:
    """How many of ``variants`` to fine-tune in one stack: all on CUDA; on a CPU as many as keep one step's widest
    stacked activation within ``sweep.CPU_STEP_BYTES``, the rule that sizes stacked seeds: stacked DNN and ViT
    variants train several times faster there, wide CNNs' stacked convolutions slower (benchmarks/speed.py times
    both ways)."""
    if dataset.train.x.device.type == "cuda":
        return variants
    step = 4 * run.config.batch_size * train.widest_activation(run.model(dataset))  # float32 bytes per variant
    return max(1, min(variants, sweep.CPU_STEP_BYTES // step))


def _finetune_stack(run: Run, dataset, grid, epochs: int, setting) -> list[nn.Module]:
    """``finetune`` of the variants in ``grid`` (sorted by bits) as one stack."""
    cfg, nets, masks = run.config, [], []
    for sparsity, _ in grid:
        net = pruning.prune_to(run.model(dataset), sparsity)
        masks.append({name.removesuffix("_mask"): mask for name, mask in net.named_buffers()
                      if name.endswith("_mask")})
        nets.append(pruning.make_permanent(net))
    mask = {name: torch.stack([m[name] for m in masks]) for name in masks[0]}
    slices, start = [], 0
    for bits, group in itertools.groupby(bits for _, bits in grid):
        n = len(list(group))
        slices.append((slice(start, start + n), bits))
        start += n

    scheme, granularity = setting

    def rounded(params):  # each weight masked, then rounded to its variant's grid
        out = dict(params)
        for name, m in mask.items():
            w, parts = params[name] * m, []
            for rows, bits in slices:
                if granularity == "channel":  # the variants' output channels, each a row with its own scale
                    parts.append(grids.quantize(w[rows].flatten(0, 1), bits, scheme, granularity).view_as(w[rows]))
                else:  # one scale per variant
                    parts += [grids.quantize(v, bits, scheme, granularity)[None] for v in w[rows]]
            out[name] = torch.cat(parts)
        return out

    stack = train.Stack(nets, dataset.train.x.device, weights=rounded)
    opt = train.optimizer(cfg, stack.params.values())
    order = torch.Generator().manual_seed(cfg.seed)  # one order, shared: the same minibatches for every variant
    for _ in range(epochs):
        stack.train_epoch(opt, train.LOSSES[cfg.loss], dataset.train, cfg.batch_size, order)
    for k, net in enumerate(nets):
        state = fused.split(net, stack.state_dict(k))[0]
        for name, m in mask.items():
            state[name] = state[name] * m[k].cpu()  # as make_permanent folds the mask in: pruned weights exactly 0
        net.to("cpu").load_state_dict(state)
    return nets


def variants(run: Run, grid: Slice = DEFAULT.recovery, device=None, data_root=None) -> tuple[pd.DataFrame, dict]:
    """Rows like ``frontier.variants`` (method "quantization-aware") for every sparsity x bit width of ``grid``, and
    the fine-tuned weights of each (before the final rounding, which ``grid``'s setting redoes exactly), by
    "run_id/sparsity/bits"."""
    dataset = train.load_data(run.config, device, data_root)
    dense, loss_fn = run.model(dataset), train.LOSSES[run.config.loss]
    rows, states, weights, dense_bytes = [], [], {}, encoding.size(dense)
    pairs = [(s, b) for s in grid.sparsities for b in grid.precisions]
    scheme, granularity = grid.settings[0]
    for (sparsity, b), tuned in zip(pairs, finetune(run, dataset, pairs, grid.epochs, grid.settings[0])):
        weights[f"{run.run_id}/{sparsity:g}/{b}"] = tuned.state_dict()
        states.append(quantization.quantize_model(copy.deepcopy(tuned), b, scheme, granularity).state_dict())
        rows.append({"run_id": run.run_id, "method": "quantization-aware", "sparsity": sparsity,
                     "achieved": pruning.sparsity_of(tuned), "precision": str(b), "bits": b, "scheme": scheme,
                     "granularity": granularity, "size_bytes": encoding.size(tuned, b, scheme=scheme,
                                                                             granularity=granularity),
                     "dense_bytes": dense_bytes, "finetune_epochs": grid.epochs})
    splits = {"val": dataset.val, "test": dataset.test}  # all reported: few
    return pd.DataFrame(score(rows, dense, states, splits, loss_fn)), weights


def measure(runs: list[Run], grid: Slice = DEFAULT.recovery, device=None, data_root=None) -> tuple[pd.DataFrame, dict]:
    """``variants`` of every run, with each run's dataset, seed and architecture columns, and all their weights."""
    frames, weights = [], {}
    with progress.bar("quantization-aware fine-tuning", len(runs), "models", show=False) as bar:
        for run in runs:
            frame, tuned = variants(run, grid, device, data_root)
            frames.append(frame.assign(**run_columns(run)))
            weights.update(tuned)
            bar.update()
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), weights


def compared(summary: pd.DataFrame) -> pd.DataFrame:
    """The post-training rows of ``summary`` that ``gain`` compares with the quantization-aware ones: the same
    configurations and sparsities, at the fine-tuned bit widths and at float32."""
    aware = summary[summary.method == "quantization-aware"]
    tuned = aware[["dataset", "config_id", "sparsity"]].drop_duplicates()
    post = summary[(summary.method == "post-training") & (summary.bits.isin(set(aware.bits))
                                                           | (summary.precision == "float32"))]
    return post.merge(tuned, on=["dataset", "config_id", "sparsity"])


def gain(summary: pd.DataFrame) -> pd.DataFrame:
    """Per bit width: the mean test accuracy of post-training and of quantization-aware variants of the same
    configurations and sparsities, and the difference (the recovery)."""
    cols = ["dataset", "config_id", "sparsity"]
    bits = set(summary[summary.method == "quantization-aware"].bits)
    wide = summary[summary.bits.isin(bits)].pivot_table(index=[*cols, "bits"], columns="method",
                                                        values="test_mean").dropna()
    wide = wide.rename(columns={"post-training": "post_training", "quantization-aware": "quantization_aware"})
    f32 = summary[(summary.precision == "float32") & (summary.method == "post-training")].set_index(cols).test_mean
    wide["float32"] = f32.reindex(wide.reset_index(level="bits").index).to_numpy()
    out = wide.groupby("bits")[["float32", "post_training", "quantization_aware"]].mean()
    out["recovered"] = out.quantization_aware - out.post_training
    out["pairs"] = wide.groupby("bits").size()
    out["verdict"] = [verdict(*r) for r in out[["float32", "post_training", "quantization_aware"]].to_numpy()]
    return out.reset_index().sort_values("bits", ascending=False, ignore_index=True)


COLLAPSE, HELD = 0.05, 0.01  # points below float32: post-training "collapses" beyond the first, recovery "holds" within


def verdict(float32: float, post_training: float, quantization_aware: float) -> str:
    """The published claim at one bit width (quantization-aware training holds accuracy where post-training
    quantization collapses), judged on these means."""
    if np.isnan(float32):
        return "no float32 reference"
    if post_training >= float32 - COLLAPSE:
        return "post-training did not collapse"
    return "holds" if quantization_aware >= float32 - HELD else "recovery falls short"
