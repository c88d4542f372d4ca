"""Which parts of a network tolerate low precision: one component group at a time rounded to a few bits, the rest
kept float32 (the paper's open question on transformer components, and the same per layer for DNNs).

The groups are the family's (``models.components``): for the ViT the patch embedding, the attention's qkv and output
projections, the MLPs, the head, and the positions, class token and LayerNorms together; for DNNs and CNNs the first,
middle and last weight layers. Matrices are rounded to a symmetric grid per output channel, the other tensors of
the positions-and-norms group per tensor; biases of the linear layers stay float32. The variants of one model are
evaluated by ``train.evaluate_states`` on the test split's monitor subset (``common.monitor_test``): each drop is
paired, the same images with and without the rounding, so its noise comes only from the images whose prediction
flips, and ``train.MONITOR_PER_CLASS`` images per class cost a fraction of the whole split's time.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..engine import models, train
from ..engine.compression import DEFAULT, Slice
from ..engine.errors import ConfigError
from ..engine.store import Run
from .common import monitor_test, run_columns
from .grids import bits_of, quantize


def sensitivity(run: Run, bits=DEFAULT.components.precisions, device=None, data_root=None) -> pd.DataFrame:
    """One row per (component, bits) of ``run``'s model: accuracy on the test sample and its drop from float32."""
    dataset = train.load_data(run.config, device, data_root)
    model = run.model(dataset)
    rows, states = variants(model, bits)
    loss_fn = train.LOSSES[run.config.loss]
    for row, (_, acc) in zip(rows, train.evaluate_states(model, states, monitor_test(dataset), loss_fn)):
        row["test_acc"] = acc
    out = pd.DataFrame(rows).assign(run_id=run.run_id)
    out["drop"] = out.test_acc.iloc[0] - out.test_acc
    return out.iloc[1:].reset_index(drop=True)


def variants(model, bits=DEFAULT.components.precisions) -> tuple[list[dict], list[dict]]:
    """The float model's state dict and one per (component, bits), each a row saying which: the float tensors are
    shared, not copied, so ``train.evaluate_states`` sees which layers a variant keeps."""
    state = model.state_dict()
    rows, states = [{"component": "none", "bits": 32, "n_values": 0}], [state]
    for component, names in models.components(model).items():
        for b in bits:
            variant = dict(state)
            for name in names:
                w = state[name]
                variant[name] = quantize(w, b, "symmetric", "channel" if w.dim() > 1 and w.shape[0] > 1
                                         else "tensor")
            states.append(variant)
            rows.append({"component": component, "bits": bits_of(b),
                         "n_values": sum(state[n].numel() for n in names)})
    return rows, states


def table(runs, grid: Slice = DEFAULT.components, **options) -> pd.DataFrame:
    """``sensitivity`` of several runs at the compression grid's ``components`` precisions, with their dataset,
    seed and architecture columns."""
    with torch.inference_mode():
        return pd.concat([sensitivity(r, grid.precisions, **options).assign(**run_columns(r)) for r in runs],
                         ignore_index=True)


def ranking(sens: pd.DataFrame, low=(4, 3, 2)) -> pd.DataFrame:
    """Per family and component: the mean accuracy drop at each bit width, and its rank by the mean drop over the
    ``low`` bit widths (1 = the most sensitive)."""
    if not set(low) <= set(sens.bits):
        raise ConfigError(f"low={list(low)} names bit widths that were not measured: choose from {sorted(set(sens.bits))}")
    wide = sens.pivot_table(index=["family", "component"], columns="bits", values="drop", aggfunc="mean")
    wide.columns = [f"drop_{b}bit" for b in wide.columns]
    wide["low_bits_drop"] = sens[sens.bits.isin(low)].groupby(["family", "component"])["drop"].mean()
    wide["rank"] = wide.groupby(level="family").low_bits_drop.rank(ascending=False, method="min").astype(int)
    models_ = sens.groupby(["family", "component"]).run_id.nunique().rename("models")
    return wide.join(models_).reset_index().sort_values(["family", "rank"], ignore_index=True)


def in_words(rank: pd.DataFrame, low=(4, 3, 2)) -> str:
    """Per family, the most and the least sensitive component at the ``low`` bit widths ``ranking`` averaged, in one
    sentence each."""
    bits = ", ".join(map(str, low[:-1])) + f" and {low[-1]}" if len(low) > 1 else str(low[0])
    out = []
    for family, r in rank.groupby("family", sort=True):
        r = r.sort_values("low_bits_drop", ascending=False)
        title = models.family(family).title
        if len(r) == 1:
            out.append(f"The {title}s have one weight layer: at {bits} bits it loses {r.low_bits_drop.iloc[0]:.1%}.")
            continue
        top, bottom = r.iloc[0], r.iloc[-1]
        out.append(f"In the {title}s ({int(r.models.max())} models), rounding the **{top.component}** costs the most "
                   f"(a mean {top.low_bits_drop:.1%} of test accuracy over {bits} bits), the "
                   f"**{bottom.component}** the least ({bottom.low_bits_drop:.1%}).")
    return " ".join(out)
