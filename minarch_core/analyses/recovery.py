"""Quantization-aware recovery: a few epochs of fine-tuning with the pruning masks held and the weights' quantization
in the loop, against post-training quantization of the same model.

In every forward pass of the fine-tuning, each weight layer's weight is the pruned weight (``torch.nn.utils.prune``'s
mask, so pruned weights stay zero and get no gradient) rounded to the frontier's grid (symmetric, per output channel,
the scale taken from the current weights) by ``torch.fake_quantize_per_channel_affine``, whose gradient is the
straight-through estimator (identity inside the grid's range). The run's own optimiser settings and loss are used;
the data order is drawn from its seed. The fine-tuned model is then quantized exactly as post-training variants
are, so both arms are sized by the same encoding; its variants are few and all compared, so each is measured on the
validation split, the test sample and the whole test split at once.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine import train
from ..engine.store import Run
from . import encoding, pruning, quantization
from .common import monitor_test, score
from .grids import STORED, grid

SCHEME, GRANULARITY = STORED  # the frontier's grid: the same variants, recovered

EPOCHS = 2  # fine-tuning epochs per variant: "a few", at the cost of two epochs of the run's own training
BITS = (4, 3, 2)  # where post-training quantization starts to cost accuracy
SPARSITIES = (0.0, 0.75, 0.9)


def fake_quantize_weights(model: nn.Module, bits: int) -> list:
    """Quantize every weight layer's weight in the forward pass, after pruning's mask (applied by the earlier hook
    ``prune_to`` attaches, at every sparsity, 0 included); returns the hook handles."""
    def hook(module, _):
        w = module.weight
        scale, zero, qmin, qmax = grid(w.detach(), bits, SCHEME, GRANULARITY)  # one scale per output channel
        module.weight = torch.fake_quantize_per_channel_affine(
            w, scale.flatten(), zero.flatten().to(torch.int32), 0, qmin, qmax)

    return [module.register_forward_pre_hook(hook) for module, _ in pruning.prunable(model)]


def finetune(run: Run, dataset, sparsity: float, bits: int, epochs: int = EPOCHS) -> nn.Module:
    """``run``'s model pruned to ``sparsity`` and fine-tuned ``epochs`` with ``bits``-bit weights in the loop; the
    masks made permanent and the quantization hooks removed (its weights still float, to be quantized)."""
    cfg = run.config
    model = pruning.prune_to(run.model(dataset), sparsity)
    handles = fake_quantize_weights(model, bits)
    opt = train.optimizer(cfg, model.parameters())
    order = torch.Generator().manual_seed(cfg.seed)
    for _ in range(epochs):
        train.train_epoch(model, opt, train.LOSSES[cfg.loss], dataset.train, cfg.batch_size, order)
    for handle in handles:
        handle.remove()
    return pruning.make_permanent(model)


def variants(run: Run, sparsities=SPARSITIES, bits=BITS, epochs: int = EPOCHS, device=None,
             data_root=None) -> pd.DataFrame:
    """Rows like ``frontier.variants`` (method "quantization-aware") for every sparsity x bit width."""
    dataset = train.load_data(run.config, device, data_root)
    dense, loss_fn = run.model(dataset), train.LOSSES[run.config.loss]
    rows, states, dense_bytes = [], [], encoding.size(dense)
    for sparsity in sparsities:
        for b in bits:
            tuned = finetune(run, dataset, sparsity, b, epochs)
            states.append(quantization.quantize_model(copy.deepcopy(tuned), b, SCHEME, GRANULARITY).state_dict())
            rows.append({"run_id": run.run_id, "method": "quantization-aware", "sparsity": sparsity,
                         "achieved": pruning.sparsity_of(tuned), "precision": str(b), "bits": b,
                         "size_bytes": encoding.size(tuned, b, scheme=SCHEME, granularity=GRANULARITY),
                         "dense_bytes": dense_bytes, "finetune_epochs": epochs})
    splits = {"val": dataset.val, "sample": monitor_test(dataset), "test": dataset.test}  # all reported: few
    return pd.DataFrame(score(rows, dense, states, splits, loss_fn))


def compared(summary: pd.DataFrame) -> pd.DataFrame:
    """The post-training rows of ``summary`` that ``gain`` compares with the quantization-aware ones: the same
    configurations and sparsities, at ``BITS`` and at float32."""
    tuned = summary[summary.method == "quantization-aware"][["dataset", "config_id", "sparsity"]].drop_duplicates()
    post = summary[(summary.method == "post-training") & (summary.bits.isin(BITS) | (summary.precision == "float32"))]
    return post.merge(tuned, on=["dataset", "config_id", "sparsity"])


def gain(summary: pd.DataFrame) -> pd.DataFrame:
    """Per bit width: the mean test accuracy of post-training and of quantization-aware variants of the same
    configurations and sparsities, and the difference (the recovery)."""
    cols = ["dataset", "config_id", "sparsity"]
    wide = summary[summary.bits.isin(BITS)].pivot_table(index=[*cols, "bits"], columns="method",
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
