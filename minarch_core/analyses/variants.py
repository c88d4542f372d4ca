"""The compression table's measured part: every variant of the trained models that the compression grid's curve
slices ask for, each built and measured once, and the views that give each slice its table back.

A slice asks for variants (``requests``): the pruning curves every (scope, sparsity) of each representative at
float32, and the global curves of every seed of the matched-depth bands; the quantization curves every (precision,
scheme, granularity) of each representative, unpruned; the component sensitivity every (component, bits) of each
representative. Many of those are one variant: the unpruned float32 model is the pruning curves' first point in
both scopes and the quantization curves' first in both settings; a float cast uses no integer grid, so both
settings' ``float16`` are one; a band's seed that is also a representative has one global curve. A variant is
named by its ``KEY`` with what does not apply left blank (``canonical``), so ``measure`` builds and evaluates each
once, through the same functions the slices' own (``pruning.curve``, ``quantization.curve``,
``components.sensitivity``) call: pruned by ``pruning.prune_to`` and folded by ``make_permanent``, fine-tuned
``epochs`` with the run's optimiser and the masks held, rounded by ``quantization.quantize_model`` (a component by
``components.variants``), sized by ``encoding.size``, evaluated by ``train.evaluate_states`` on the grid's curve
images (``curve_split``: a stratified subset of the test split, or all of it).
The weights of every fine-tuned variant are returned with the table (``Measured.weights``), to be stored beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..engine import data, progress, train
from ..engine.compression import Compression
from ..engine.errors import ConfigError
from ..engine.store import Run
from . import components as components_, encoding, pruning
from .common import info, run_columns
from .grids import FLOATS, bits_of, precision_of
from .quantization import quantize_model

KEY = ["run_id", "scope", "scheme", "granularity", "sparsity", "precision", "epochs", "component", "split"]
WHOLE = "all"  # the component of a variant rounded whole


@dataclass
class Measured:
    table: pd.DataFrame  # one row per variant (``KEY``): what it is, its bytes and its loss and accuracy
    weights: dict  # "run_id/scope/sparsity/epochs" -> the state dict of each fine-tuned model, before rounding


def curve_split(dataset: data.Dataset, grid: Compression) -> data.Split:
    """The test images the curve slices are measured on: ``grid.curve_images`` of each class drawn with
    ``grid.curve_seed`` (the same for every variant and seed), or the whole test split."""
    split = dataset.test
    if grid.curve_images is None:
        return split
    y = split.y.cpu().numpy()
    smallest = int(np.bincount(y, minlength=dataset.n_classes).min())
    if grid.curve_images > smallest:
        raise ConfigError(f"compression grid curve_images: {grid.curve_images} test images per class, but the "
                          f"test split of {dataset.name} holds {smallest} of its smallest class: the largest "
                          f"allowed is {smallest} (or None for the whole split)")
    idx = torch.from_numpy(data.stratified_indices(y, grid.curve_images, grid.curve_seed)).to(split.x.device)
    return data.Split(split.x[idx], split.y[idx])


def standard_error(images: int, disagree: float | None = None) -> float:
    """The standard error of an accuracy measured on ``images`` images: at most 1 / (2 sqrt(n)) for one variant (a
    curve point); for the difference of two variants measured on the same images, sqrt(d / n) at most, ``disagree``
    (d) the share of images that exactly one of them gets right (the paired comparisons every curve reads)."""
    return float(np.sqrt(disagree / images) if disagree is not None else 0.5 / np.sqrt(images))


def curve_words(grid: Compression, specs=None, disagree=(0.01, 0.05)) -> str:
    """What the grid's curve images are, for the datasets of ``specs`` (default: every registered one, easiest
    first), and what they add to a curve's uncertainty (``standard_error``), in words."""
    specs = [data.spec(d) for d in data.by_difficulty()] if specs is None else specs
    def images(spec, per_class):
        return per_class * spec.n_classes if per_class else (spec.official or (0, 0))[1]
    whole = 100 * max(standard_error(images(s, None) or 1) for s in specs)
    if grid.curve_images is None:
        return ("The curves are measured on the whole test split (" + ", ".join(
            f"{images(s, None):,} images of {s.title}" for s in specs) + f"): a curve point's standard error is at "
            f"most {whole:.1f} points.")
    n = min(images(s, grid.curve_images) for s in specs)
    paired = [f"{100 * standard_error(n, d):.2f} points" for d in disagree]
    return (f"The curves of this study are measured on {grid.curve_images} test images of each class, drawn with "
            f"seed {grid.curve_seed} (" + ", ".join(f"{images(s, grid.curve_images):,} of {s.title}" for s in specs)
            + f"). A curve point's standard error is then at most {100 * standard_error(n):.1f} points ({whole:.1f} "
            f"on the whole split). The difference between two variants of one model, measured on the same images, "
            f"has a standard error of at most sqrt(d / n), d the share of the images that exactly one of the two "
            f"gets right: {paired[0]} when d is {disagree[0]:.0%}, "
            + ", ".join(f"{p} at {d:.0%}" for p, d in zip(paired[1:], disagree[1:]))
            + ". The seed bands of the curves show the spread between seeds on these same images; they do not hold "
              "the error of a point above, which moves every seed's point together.")


def split_name(grid: Compression) -> str:
    """What the ``split`` column of a curve variant says: "test" (whole) or "subset" (``grid.curve_images``)."""
    return "test" if grid.curve_images is None else "subset"


def requests(grid: Compression, representatives: pd.DataFrame, bands: pd.DataFrame) -> pd.DataFrame:
    """Every variant each curve slice asks for, one row per (slice, run, ...) as the slice names it: ``slice``,
    ``KEY`` and the ``canonical`` key's columns (``c_``-prefixed) that ``measure`` measures it under. The component
    slice asks for the unpruned float model (component "none") and for every component group ("*") at each bit
    width. Every slice on the grid's curve images (``curve_split``)."""
    rows, g, on = [], grid.pruning, split_name(grid)
    for run_id in representatives.run_id:
        rows += [("pruning", run_id, scope, *g.settings[0], s, "float32", g.epochs, WHOLE, on)
                 for scope in g.scopes for s in g.sparsities]
        rows += [("quantization", run_id, "global", scheme, granularity, 0.0, str(p), 0, WHOLE, on)
                 for scheme, granularity in grid.quantization.settings for p in grid.quantization.precisions]
        c = grid.components
        rows += [("components", run_id, "global", *c.settings[0], 0.0, "float32", 0, "none", on)]
        rows += [("components", run_id, "global", *c.settings[0], 0.0, str(p), 0, "*", on)
                 for p in c.precisions]
    m = grid.matched
    rows += [("matched", run_id, "global", *m.settings[0], s, "float32", m.epochs, WHOLE, on)
             for run_id in bands.run_id for s in m.sparsities]
    out = pd.DataFrame(rows, columns=["slice", *KEY])
    return pd.concat([out, canonical(out).add_prefix("c_")], axis=1)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s ``KEY`` columns with what does not change the variant blanked: the scope and the fine-tuning of an
    unpruned model (pruning fine-tunes only what it pruned), the integer grid of a float cast (which uses none)."""
    out = frame[KEY].copy()
    dense = out.sparsity == 0
    out.loc[dense, "scope"], out.loc[dense, "epochs"] = "", 0
    out.loc[out.precision.isin(list(FLOATS)), ["scheme", "granularity"]] = ""
    return out


def measure(runs: list[Run], wanted: pd.DataFrame, grid: Compression, device=None, data_root=None) -> Measured:
    """Every variant of ``wanted`` (rows of canonical ``KEY``s) measured once, on ``grid``'s curve images: one row
    per variant, with the run's dataset, seed and architecture columns (a component "*" row becomes one per
    component group of the run's family), and the weights of the fine-tuned ones."""
    frames, weights = [], {}
    with progress.bar("curves", len(runs), "models", show=False) as bar:
        for run in runs:
            mine = wanted[wanted.run_id == run.run_id].drop_duplicates(KEY)
            frame, tuned = _measure_run(run, mine, grid, device, data_root)
            frames.append(frame.assign(**run_columns(run)))
            weights.update(tuned)
            bar.update()
    return Measured(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEY), weights)


def _measure_run(run: Run, wanted: pd.DataFrame, grid: Compression, device, data_root) -> tuple[pd.DataFrame, dict]:
    """``measure`` of one run: its variants built (each pruned model once), then evaluated in one call, so that
    ``train.evaluate_states`` can share the layers that component variants keep."""
    dataset = train.load_data(run.config, device, data_root)
    images = curve_split(dataset, grid)  # refused here, before anything is measured, when the grid asks too many
    dense, loss_fn = run.model(dataset), train.LOSSES[run.config.loss]
    if set(wanted.split) - {split_name(grid)}:
        raise ConfigError(f"variants asked on {sorted(set(wanted.split))}, but the grid measures its curves on "
                          f"{split_name(grid)!r}")
    rows, states, tuned = [], [], {}
    whole = wanted[wanted.component == WHOLE]
    for (scope, sparsity, epochs), group in whole.groupby(["scope", "sparsity", "epochs"], sort=False):
        model = _pruned(run, dataset, scope, sparsity, epochs)
        if epochs:
            tuned[f"{run.run_id}/{scope}/{sparsity:g}/{epochs}"] = model.state_dict()
        for v in group.itertuples(index=False):
            precision, setting = precision_of(v.precision), (v.scheme or "symmetric", v.granularity or "tensor")
            states.append(quantize_model(_copy(model, run, dataset), precision, *setting).state_dict())
            rows.append({**v._asdict(), "achieved": pruning.sparsity_of(model), "bits": bits_of(precision),
                         "size_bytes": encoding.size(model, precision, scheme=setting[0], granularity=setting[1])})
    parts = wanted[wanted.component != WHOLE]
    if len(parts):  # the component groups, unpruned, the float state first: the one the others share layers with
        groups = parts[parts.component == "*"]
        found, variants_ = components_.variants(dense, [precision_of(p) for p in groups.precision.unique()])
        asked = {"float": parts[parts.component == "none"].iloc[0].to_dict(), "int": groups.iloc[0].to_dict()}
        rows[:0] = [{**asked["float" if info["component"] == "none" else "int"], **info, "achieved": 0.0,
                     "precision": "float32" if info["component"] == "none" else str(info["bits"])}
                    for info in found]
        states[:0] = variants_
    measured = train.evaluate_states(dense, states, images, loss_fn) if rows else []
    return pd.DataFrame([{**r, "loss": loss, "acc": acc} for r, (loss, acc) in zip(rows, measured)]), tuned


def _pruned(run: Run, dataset, scope: str, sparsity: float, epochs: int):
    """``run``'s model pruned to ``sparsity`` in ``scope`` (none for an unpruned one), fine-tuned ``epochs`` with its
    own optimiser settings and the masks held (``pruning.finetune``), the masks then folded in."""
    model = run.model(dataset)
    if sparsity:
        pruning.prune_to(model, sparsity, scope)
        pruning.finetune(model, run, dataset, epochs)
    return pruning.make_permanent(model)


def _copy(model, run: Run, dataset):
    """A copy of ``model`` (made permanent: plain parameters) as a fresh model of ``run``'s architecture."""
    fresh = run.model(dataset)
    fresh.load_state_dict(model.state_dict())
    return fresh


# -- the views -------------------------------------------------------------------------------------------------------

def joined(asked: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per request (``requests``: the slice, and the variant as the slice names it) with its variant's
    measurement (the component slice's "*" rows, one per component group); ``shared``: the variant answers more
    than one request, and was measured once for all."""
    star = asked.component == "*"
    groups = measured[~measured.component.isin([WHOLE, "none"])][["run_id", "component", "precision"]]
    expanded = asked[star].drop(columns=["component", "c_component"]).merge(groups, on=["run_id", "precision"])
    asked = pd.concat([asked[~star], expanded.assign(c_component=expanded.component)], ignore_index=True)
    keys = ["c_" + k for k in KEY]
    out = asked.merge(measured.drop(columns=[c for c in info() if c in measured and c != "run_id"])
                      .rename(columns={k: "c_" + k for k in KEY}), on=keys, how="left")
    if out.acc.isna().any():
        raise ValueError(f"{int(out.acc.isna().sum())} requested variants were not measured")
    out["shared"] = out.groupby(keys).slice.transform("size") > 1
    info_ = measured.drop_duplicates("run_id").set_index("run_id")[[c for c in info() if c in measured and
                                                                     c != "run_id"]]
    return out.join(info_, on="run_id").drop(columns=keys)


def pruning_curves(table: pd.DataFrame, name: str = "pruning") -> pd.DataFrame:
    """The pruning curves (``pruning.curves``'s columns) of slice ``name`` ("pruning", or "matched" for the bands)."""
    v = table[table.slice == name]
    return pd.DataFrame({"run_id": v.run_id, "scope": v.scope, "method": "one-shot", "finetune_epochs": v.epochs,
                         "classifier_dense": False, "sparsity": v.sparsity, "achieved": v.achieved,
                         "size_bytes": v.size_bytes.astype(int), "test_loss": v.loss, "test_acc": v.acc,
                         **_info(v)}).reset_index(drop=True)


def quantization_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The quantization curves (``quantization.curves``'s columns), each with its drop from float32."""
    v = table[table.slice == "quantization"]
    out = pd.DataFrame({"run_id": v.run_id, "precision": v.precision, "bits": v.bits.astype(int),
                        "kind": np.where(v.precision.isin(list(FLOATS)), "float", "int"), "scheme": v.scheme,
                        "granularity": v.granularity, "size_bytes": v.size_bytes.astype(int), "test_loss": v.loss,
                        "test_acc": v.acc, **_info(v)}).reset_index(drop=True)
    base = out[out.precision == "float32"].groupby(["run_id", "scheme", "granularity"]).test_acc.first()
    out["drop"] = out.set_index(["run_id", "scheme", "granularity"]).index.map(base).to_numpy() - out.test_acc
    return out


def sensitivity(table: pd.DataFrame) -> pd.DataFrame:
    """The component sensitivity (``components.table``'s columns): each (component, bits) and its drop."""
    v = table[table.slice == "components"]
    base = v[v.component == "none"].set_index("run_id").acc
    v = v[v.component != "none"]
    return pd.DataFrame({"component": v.component, "bits": v.bits.astype(int), "n_values": v.n_values.astype(int),
                         "test_acc": v.acc, "run_id": v.run_id, "drop": v.run_id.map(base) - v.acc,
                         **_info(v)}).reset_index(drop=True)


def _info(v: pd.DataFrame) -> dict:
    """The run columns of a slice's rows, less the architecture columns its families do not have."""
    return {c: v[c] for c in info() if c in v and c != "run_id" and v[c].notna().any()}
