"""L1-magnitude pruning of trained models with ``torch.nn.utils.prune``: accuracy against sparsity.

Choices (the paper states only "L1 pruning"): unstructured pruning of the family's weight layers (every Linear and
Conv2d weight, the ViT's patch embedding included), biases, LayerNorms, positions and the class token kept; ``scope="global"`` ranks all those weights together (one threshold), and
``scope="layer"`` prunes the same fraction of every tensor; ``keep_classifier_dense`` leaves the last linear layer
out, as ShrinkBench does. Pruning is one-shot from the dense weights by default; ``finetune_epochs`` fine-tunes after
pruning with the run's own optimiser settings, the masks held (pruned weights stay zero, no regrowth); ``iterative``
walks the sparsity grid upwards, pruning the surviving weights and fine-tuning at each step (iterative magnitude
pruning). Every model is a fresh copy built from the stored weights, so the dense run is never altered. The
sparsities and scopes measured are the study's compression grid (``engine.compression``, slice ``pruning``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from ..engine import models, train
from ..engine.compression import DEFAULT, SCOPES, Slice
from ..engine.errors import ConfigError
from ..engine.store import Run
from . import encoding
from .common import chance, info_of, run_columns, score, square
from .regimes import LEARNS

REDUNDANT = 0.6  # the share of weights the paper says can be pruned with little loss (its redundancy claim)


class L1Magnitude(prune.BasePruningMethod):
    """``torch.nn.utils.prune``'s L1 (magnitude) unstructured pruning, selecting the weights by their k-th smallest
    magnitude (``torch.kthvalue``, linear time) instead of ``torch.topk``, slow when k is most of the tensor, as in
    pruning (``benchmarks/speed.py`` times the frontier's pruning both ways). The same weights are pruned up to
    ties: of weights whose magnitudes tie at the threshold, the first in memory order go (topk leaves which
    unspecified). The masks, the reparametrisation and the pruning of already pruned tensors (only the surviving
    weights are ranked) are torch's own, through its public ``BasePruningMethod`` interface."""
    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: float | int):
        """``amount``: a fraction of the weights (a float in 0..1), or a count of them (an int), as torch takes it."""
        if isinstance(amount, bool) or not isinstance(amount, float | int) or amount < 0 or \
                (isinstance(amount, float) and amount > 1):
            raise ConfigError(f"the amount to prune must be a fraction in 0..1 or a count >= 0, got {amount!r}")
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = self.amount if isinstance(self.amount, int) else round(self.amount * t.nelement())  # torch's count
        if k > t.nelement():
            raise ConfigError(f"cannot prune {k} weights of a tensor of {t.nelement()}")
        mask = default_mask.clone(memory_format=torch.contiguous_format)
        if k:
            magnitude = t.detach().abs().reshape(-1)
            threshold = torch.kthvalue(magnitude, k).values
            below = magnitude < threshold
            ties = (magnitude == threshold).nonzero().reshape(-1)[: k - int(below.sum())]
            flat = mask.view(-1)
            flat[below] = 0
            flat[ties] = 0
        return mask


def prunable(model: nn.Module, keep_classifier_dense: bool = False) -> list[tuple[nn.Module, str]]:
    """The (module, name) pairs that pruning may touch: the family's weight layers (``models.weight_layers``),
    without the classifier (the last) when it is kept dense."""
    layers = models.weight_layers(model)
    return layers[:-1] if keep_classifier_dense else layers


def prune_to(model: nn.Module, sparsity: float, scope: str = "global", keep_classifier_dense: bool = False) -> nn.Module:
    """Prune ``model`` in place until ``sparsity`` of its prunable weights are zero (masks stay attached, so that
    fine-tuning keeps them; ``make_permanent`` removes them). Works on an already pruned model too: only the
    surviving weights are ranked, so the sparsity grows to the new target."""
    if not 0 <= sparsity <= 1 or isinstance(sparsity, bool):
        raise ConfigError(f"sparsity must be a fraction in 0..1, got {sparsity!r}")
    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}: choose one of {list(SCOPES)}")
    params = prunable(model, keep_classifier_dense)
    for module, _ in params:  # the order make_permanent restores
        module.__dict__.setdefault("minarch_parameter_order", list(module._parameters))
    current = sparsity_of(model, keep_classifier_dense)
    amount = 0.0 if sparsity <= current else (sparsity - current) / (1 - current)  # of the surviving weights
    if scope == "global":
        prune.global_unstructured(params, pruning_method=L1Magnitude, amount=amount)
    else:
        for module, name in params:
            L1Magnitude.apply(module, name, amount=amount)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the masks into the weights (``prune.remove``), so the state dict holds plain, zeroed ``weight``s, the
    parameters in their original order (``prune.remove`` appends the weight after the bias; the encoding and every
    state dict follow ``parameters()`` order)."""
    for module in model.modules():
        for buffer, _ in list(module.named_buffers(recurse=False)):
            if buffer.endswith("_mask"):
                prune.remove(module, buffer[: -len("_mask")])
        order = module.__dict__.pop("minarch_parameter_order", None)  # recorded by prune_to
        if order is not None:
            module._parameters = {name: module._parameters[name] for name in order}
    return model


def masked_state(model: nn.Module) -> dict:
    """``model``'s state dict with every pruned weight as its masked value under its own name (what
    ``make_permanent`` would leave), the model itself untouched: a copy, which training the model further (as
    iterative pruning does) leaves as it was."""
    state = model.state_dict()
    return {k.removesuffix("_orig"): v * state[k.removesuffix("_orig") + "_mask"] if k.endswith("_orig") else v.clone()
            for k, v in state.items() if not k.endswith("_mask")}


def _with(fresh: nn.Module, pruned: nn.Module) -> nn.Module:
    fresh.load_state_dict(masked_state(pruned))
    return fresh


def sparsity_of(model: nn.Module, keep_classifier_dense: bool = False) -> float:
    """Fraction of exactly-zero entries among the prunable weights."""
    tensors = [getattr(m, n) for m, n in prunable(model, keep_classifier_dense)]
    return sum(int((t == 0).sum()) for t in tensors) / sum(t.numel() for t in tensors)


def curve(run: Run, sparsities=DEFAULT.pruning.sparsities, scope: str = "global", keep_classifier_dense: bool = False,
          finetune_epochs: int = 0, iterative: bool = False, splits=("test",), device=None,
          data_root=None) -> pd.DataFrame:
    """Accuracy (and loss) of ``run``'s model on ``splits`` at each sparsity: one row per sparsity."""
    dataset = train.load_data(run.config, device, data_root)
    loss_fn = train.LOSSES[run.config.loss]
    order = torch.Generator().manual_seed(run.config.seed)  # iterative pruning's one data order, step after step
    model = None
    rows, states = [], []
    for target in sorted(sparsities):
        if model is None or not iterative:
            model = run.model(dataset)
        prune_to(model, target, scope, keep_classifier_dense)
        finetune(model, run, dataset, finetune_epochs if target > 0 else 0, order if iterative else None)
        states.append(masked_state(model))
        rows.append({"run_id": run.run_id, "scope": scope, "method": "iterative" if iterative else "one-shot",
                     "finetune_epochs": finetune_epochs, "classifier_dense": keep_classifier_dense,
                     "sparsity": target, "achieved": sparsity_of(model, keep_classifier_dense),
                     "size_bytes": encoding.size(_with(run.model(dataset), model))})  # float32, sparse layouts
    return pd.DataFrame(score(rows, run.model(dataset), states, {s: getattr(dataset, s) for s in splits},
                                     loss_fn))


def finetune(model: nn.Module, run: Run, dataset, epochs: int, order: torch.Generator | None = None) -> nn.Module:
    """Fine-tune a pruned ``model`` (masks attached, so pruned weights stay zero and get no gradient) ``epochs`` on
    ``dataset``'s training split with ``run``'s optimiser settings and loss, in the data order of ``order`` (default:
    drawn afresh from the run's seed, so a one-shot variant's fine-tuning does not depend on the others')."""
    cfg = run.config
    order = order or torch.Generator().manual_seed(cfg.seed)
    opt = train.optimizer(cfg, model.parameters()) if epochs else None
    for _ in range(epochs):
        train.train_epoch(model, opt, train.LOSSES[cfg.loss], dataset.train, cfg.batch_size, order)
    return model


def curves(runs, grid: Slice = DEFAULT.pruning, **options) -> pd.DataFrame:
    """``curve`` of several runs at every sparsity and scope of the compression grid's slice, fine-tuned its
    ``epochs`` after pruning, with each run's dataset, seed and architecture columns."""
    return pd.concat([curve(run, grid.sparsities, scope, finetune_epochs=grid.epochs, **options)
                      .assign(**run_columns(run))
                      for scope in grid.scopes for run in runs], ignore_index=True)


def matched_bands(configs: pd.DataFrame, ratio: float = 1.3) -> pd.DataFrame:
    """Square networks of the shaped families (``models.shaped``: the DNNs, depths 1 to 4 where the study has them)
    that learn the task, in bands of about equal parameter count, one network per depth and at least two depths: for
    each unused network (smallest first), the unused network of every other depth nearest to it in log parameters
    and within a factor ``ratio`` of it. What compares depths at matched size, so that depth is not confounded with
    size; a band need not hold every depth, so that the depth slope reads every size where two depths meet."""
    d = square(configs[configs.family.isin(models.shaped()) & configs.regime.isin(LEARNS)])
    rows = []
    for dataset, g in d.groupby("dataset", sort=True):
        g, used = g.sort_values(["n_params", "depth"]), set()
        for _, ref in g.iterrows():
            if ref.config_id in used:
                continue
            band = [ref]
            for depth in sorted(set(g.depth) - {ref.depth}):
                pool = g[(g.depth == depth) & ~g.config_id.isin(used)]
                if pool.empty:
                    continue
                near = pool.iloc[int(np.argmin(np.abs(np.log(pool.n_params / ref.n_params))))]
                if max(near.n_params, ref.n_params) / min(near.n_params, ref.n_params) <= ratio:
                    band.append(near)
            if len(band) > 1:
                used.update(b.config_id for b in band)
                rows += [{**b.to_dict(), "band": f"{ref.n_params:,.0f}"} for b in band]
    return pd.DataFrame(rows, columns=[*configs.columns, "band"])


def redundancy(curves_: pd.DataFrame, tolerance: float = DEFAULT.tolerance,
               collapse_margin: float = 0.05) -> pd.DataFrame:
    """Per curve: dense accuracy; the redundancy (the largest sparsity up to which every tested sparsity keeps test
    accuracy within ``tolerance`` of dense); and where the curve collapses (first sparsity at most the dataset's
    chance + ``collapse_margin``)."""
    keys = [k for k in ("run_id", "scope", "method", "finetune_epochs", "classifier_dense") if k in curves_]
    rows = []
    curves_ = curves_.assign(chance=chance(curves_))
    for key, c in curves_.sort_values("sparsity").groupby(keys, sort=False):
        dense = c.loc[c.sparsity == 0, "test_acc"]
        dense = float(dense.iloc[0]) if len(dense) else np.nan
        kept = (c.test_acc >= dense - tolerance).to_numpy()
        plateau = c.sparsity.to_numpy()[: np.argmin(kept) if not kept.all() else len(kept)]
        collapsed = c.sparsity[c.test_acc <= c.chance + collapse_margin]
        rows.append({**dict(zip(keys, key)), "dense_acc": dense,
                     "redundancy": float(plateau.max()) if len(plateau) else np.nan,
                     "collapse_at": float(collapsed.min()) if len(collapsed) else np.nan})
    out = pd.DataFrame(rows).join(info_of(curves_), on="run_id")
    return out.sort_values([k for k in ("scope", "family", "depth", "n_params") if k in out], ignore_index=True)


def phases(curves_: pd.DataFrame, tolerance: float = DEFAULT.tolerance, collapse_margin: float = 0.05) -> pd.Series:
    """Each point's pruning phase: ``plateau`` (within tolerance of dense), ``collapse`` (near the dataset's
    chance) or ``decline`` (in between)."""
    dense = curves_[curves_.sparsity == 0].set_index("run_id").test_acc.groupby(level=0).first()
    ref = curves_.run_id.map(dense)
    return pd.Series(np.where(curves_.test_acc >= ref - tolerance, "plateau",
                              np.where(curves_.test_acc <= chance(curves_) + collapse_margin, "collapse", "decline")),
                     index=curves_.index, name="phase")


def phase_counts(curves_: pd.DataFrame, tolerance: float = DEFAULT.tolerance) -> pd.DataFrame:
    """How many models are in each pruning phase (``phases``) at each sparsity, both scopes together."""
    counts = curves_.assign(phase=phases(curves_, tolerance)).pivot_table(
        index="sparsity", columns="phase", values="run_id", aggfunc="count", fill_value=0)
    return counts.reindex(columns=["plateau", "decline", "collapse"], fill_value=0).reset_index()


def redundancy_in_words(redundancy: pd.DataFrame, threshold: float = REDUNDANT) -> str:
    """Global pruning's redundancy of the representatives in words, seeds averaged: by depth for the families
    whose knob lists hidden widths, the most redundant model, and how many reach ``threshold``."""
    g = redundancy[redundancy.scope == "global"].groupby(["config_id", "model", "family", "depth"]).redundancy
    g = g.mean().reset_index()
    if g.redundancy.isna().all():
        return "No representative has a global pruning curve."
    by_depth = g[g.family.isin(models.shaped())].groupby(["family", "depth"]).redundancy.mean()
    layered = "; ".join(f"the representative {models.family(f).title}s keep their accuracy up to a mean sparsity of "
                        + ", ".join(f"**{v:.0%}** at depth {d}" for d, v in by_depth[f].items())
                        for f in by_depth.index.unique(0))
    best = g.loc[g.redundancy.idxmax()]
    return ("Global pruning, averaged over seeds" + (f": {layered}." if layered else ".")
            + f" The most redundant model, {best.model}, tolerates **{best.redundancy:.0%}** sparsity; "
            f"{(g.redundancy >= threshold).sum()} of {len(g)} models tolerate {threshold:.0%} or more. These "
            f"representatives differ in size as well as depth; the next section compares depths at matched size.")


def slope(depths, values) -> float:
    """The least-squares slope of redundancy against depth (per hidden layer) of one band's cells."""
    return float(np.polyfit(np.asarray(depths, float), np.asarray(values, float), 1)[0])


def depth_slopes(matched: pd.DataFrame) -> pd.DataFrame:
    """Per size band of ``matched_redundancy``: the slope of redundancy (each depth's mean over its seeds) against
    depth, per hidden layer, and the depths it spans."""
    rows = []
    for band, g in matched.dropna(subset=["redundancy"]).groupby("band", sort=False):
        cell = g.groupby("depth").redundancy.mean()
        if len(cell) > 1:
            rows.append({"band": band, "n_params": g.n_params.min(), "depths": "-".join(map(str, cell.index)),
                         "slope": slope(cell.index, cell.values)})
    return pd.DataFrame(rows, columns=["band", "n_params", "depths", "slope"])


def depth_in_words(matched: pd.DataFrame) -> str:
    """The depth slope at matched size in one sentence, worded by its sign, over the size bands where two depths
    or more meet."""
    slopes = depth_slopes(matched).slope * 100
    if slopes.empty:
        return ("No size band holds two depths that learn the task: the grid cannot compare depths at matched size "
                "here.")
    mean = slopes.mean()
    how = (f"**{abs(mean):.1f} points {'more' if mean > 0 else 'less'} sparsity** per extra hidden layer on average"
           if round(mean, 1) else "**as much sparsity** whatever its depth, on average, to a tenth of a point")
    return (f"Over the {len(slopes)} size band{'s' * (len(slopes) > 1)} where two depths or more meet, a network "
            f"tolerates {how}; by band the slope runs from {slopes.min():+.1f} to {slopes.max():+.1f} points per "
            f"layer.")
